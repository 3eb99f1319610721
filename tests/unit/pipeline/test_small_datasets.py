"""Fewer than 5 training cases: verify and plan warn, train names fold 'all' and splits_final.json, run trains 'all'."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from autounet.dataset import small, verify
from autounet.errors import DatasetError
from autounet.testing import make_synthetic_dataset
from autounet.training.splits import fold_cases
from autounet.workspace import Workspace

NAME = "Dataset991_Four"


def _workspace(tmp_path: Path, n_cases: int = 4) -> Workspace:
    ws = Workspace.at(tmp_path / "ws").ensure()
    make_synthetic_dataset(ws.raw / NAME, n_cases=n_cases, shape=(6, 24, 24), spacing=(2.0, 1.0, 1.0), seed=1)
    return ws


def test_advice_names_all_and_the_split_file() -> None:
    text = small.advice(4, splits_file="/w/splits_final.json", dataset="Dataset991_Four")
    assert "only 4 training case(s)" in text and "fold 'all'" in text
    assert "autounet train Dataset991_Four CONFIG all" in text and "/w/splits_final.json" in text
    assert '{"train": [case ids], "val": [case ids]}' in text
    assert small.is_small(4) and not small.is_small(5)


def test_train_error_names_all_and_the_custom_split(tmp_path: Path) -> None:
    splits = tmp_path / "splits_final.json"
    with pytest.raises(DatasetError, match=r"Cannot make 5 cross-validation folds for fold 0: only 4 training "
                                           r"case\(s\).*fold 'all'.*splits_final\.json"):
        fold_cases(splits, ["a", "b", "c", "d"], 0)
    assert not splits.exists()
    assert fold_cases(splits, ["a", "b", "c", "d"], "all") == (["a", "b", "c", "d"], ["a", "b", "c", "d"])
    splits.write_text('[{"train": ["a", "b", "c"], "val": ["d"]}]', encoding="utf-8")  # a hand-written split
    assert fold_cases(splits, ["a", "b", "c", "d"], 0) == (["a", "b", "c"], ["d"])


def test_verify_warns(tmp_path: Path) -> None:
    ws = _workspace(tmp_path)
    report = verify(ws.raw / NAME, workers=1)
    assert report.ok
    (warning,) = [w for w in report.warnings if w.check == "few_cases"]
    assert "only 4 training case(s)" in warning.message and "fold 'all'" in warning.message
    ws5 = _workspace(tmp_path / "five", n_cases=5)
    assert not [w for w in verify(ws5.raw / NAME, workers=1).warnings if w.check == "few_cases"]


def test_plan_warns(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    from autounet.planning.store import plan_dataset

    ws = _workspace(tmp_path)
    with caplog.at_level(logging.WARNING, logger="autounet"):
        plan_dataset(ws, NAME, configurations=["2d"])
    assert any("only 4 training case(s)" in r.getMessage() and "fold 'all'" in r.getMessage()
               for r in caplog.records)


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_run_trains_fold_all_and_says_so(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from autounet.cli import main

    ws = _workspace(tmp_path)
    code = main(["run", NAME, "--workspace", str(ws.raw.parent), "-c", "2d", "--budget", "short", "--epochs", "1",
                 "--iters-per-epoch", "1", "-j", "1"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "training fold 'all' (every case, no validation)" in out
    assert "[train] 2d/fold_all on" in out and "skipped: fold 'all' has no validation cases" in out
    assert (ws.model_dir(NAME, "2d") / "fold_all" / "checkpoint_final.pth").is_file()
    assert not ws.splits_file(NAME).exists()
