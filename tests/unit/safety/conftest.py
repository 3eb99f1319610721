"""Fixtures of the safety tests: a tiny raw dataset in a temporary workspace, and the CLI run in-process."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from _safety_testlib import DATASET

from autounet.cli import main
from autounet.testing import make_synthetic_dataset


@pytest.fixture
def tiny_workspace(tmp_path: Path) -> Path:
    """``tmp_path/deep/er/ws`` with ``raw/Dataset001_Tiny`` (3 cases of 4 x 8 x 8 voxels, one test case).

    The workspace lies three levels down so that an escaping ``../../..`` path still lands inside ``tmp_path``,
    where the tests look for escaped files.
    """
    ws = tmp_path / "deep" / "er" / "ws"
    make_synthetic_dataset(ws / "raw" / DATASET, n_cases=3, shape=(4, 8, 8), spacing=(1.0, 1.0, 1.0), n_test=1)
    return ws


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str]]:
    """``run_cli(*args) -> (exit code, stderr)`` through ``autounet.cli.main``; ``run_cli.out``: its stdout."""

    def run(*args: str) -> tuple[int, str]:
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        run.out = captured.out  # type: ignore[attr-defined]
        return code, captured.err

    return run
