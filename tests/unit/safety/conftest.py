"""Tiny raw datasets in temporary workspaces, and helpers to run the CLI and check its one-line errors."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from autounet.cli import main
from autounet.testing import make_synthetic_dataset

DATASET = "Dataset001_Tiny"


@pytest.fixture
def tiny_workspace(tmp_path: Path) -> Path:
    """``tmp_path/deep/er/ws`` with ``raw/Dataset001_Tiny`` (3 cases of 4 x 8 x 8 voxels, one test case).

    The workspace lies three levels down so that an escaping ``../../..`` path still lands inside ``tmp_path``,
    where :func:`outside_files` sees it.
    """
    ws = tmp_path / "deep" / "er" / "ws"
    make_synthetic_dataset(ws / "raw" / DATASET, n_cases=3, shape=(4, 8, 8), spacing=(1.0, 1.0, 1.0), n_test=1)
    return ws


def tree(root: Path, *, exclude: Path | None = None) -> dict[str, str]:
    """``relative path -> sha256`` of every file under ``root`` (links not followed), except under ``exclude``."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        if exclude is not None and Path(dirpath).resolve().is_relative_to(exclude.resolve()):
            dirnames[:] = []
            continue
        for name in filenames:
            path = Path(dirpath) / name
            out[str(path.relative_to(root))] = "link" if path.is_symlink() else \
                hashlib.sha256(path.read_bytes()).hexdigest()
    return out


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


def assert_one_line_error(code: int, err: str, *, expect: tuple[int, ...] = (1, 2), contains: str = "") -> str:
    """The command failed with an expected exit code and exactly one error line without a traceback."""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ": error: " in ln]
    assert code in expect, err
    assert "Traceback" not in err, err
    assert len(errors) == 1, err
    assert contains.lower() in errors[0].lower(), errors[0]
    return errors[0]
