"""`autounet run` end to end on a tiny synthetic dataset: artefacts, model selection, and resume after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from autounet.cli import main
from autounet.testing import make_synthetic_dataset
from autounet.workspace import Workspace

TINY = ["--epochs", "1", "--iters-per-epoch", "2"]


def _dataset(tmp_path: Path) -> Workspace:
    ws = Workspace.at(tmp_path / "ws").ensure()
    make_synthetic_dataset(ws.raw / "Dataset990_Tiny", n_cases=6, shape=(8, 32, 32), spacing=(2.0, 1.0, 1.0), seed=3)
    return ws


def _fold_dir(ws: Workspace, fold: int) -> Path:
    return ws.model_dir("Dataset990_Tiny", "2d") / f"fold_{fold}"


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_run_writes_every_artefact(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ws = _dataset(tmp_path)
    code = main(["run", "990", "--workspace", str(ws.raw.parent), "-c", "2d", "-f", "0", "1", "--budget", "short",
                 *TINY])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "chosen model: nnUNetTrainer__nnUNetPlans__2d" in out
    for fold in (0, 1):
        assert (_fold_dir(ws, fold) / "checkpoint_final.pth").is_file()
        assert (_fold_dir(ws, fold) / "validation" / "summary.json").is_file()
    info = json.loads((ws.results_dataset("Dataset990_Tiny") / "inference_information.json").read_text(encoding="utf-8"))
    assert info["folds"] == [0, 1]
    assert (ws.results_dataset("Dataset990_Tiny") / "inference_instructions.txt").is_file()
    assert (ws.results_dataset("Dataset990_Tiny") / "report" / "index.html").is_file()
    # a second run does nothing again
    assert main(["run", "990", "--workspace", str(ws.raw.parent), "-c", "2d", "-f", "0", "1", "--budget", "short",
                 *TINY]) == 0
    assert "already done before: 2d/fold_0, 2d/fold_1" in capsys.readouterr().out


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_killed_run_resumes_without_redoing_finished_folds(tmp_path: Path) -> None:
    ws = _dataset(tmp_path)
    cmd = [sys.executable, "-m", "autounet", "run", "990", "--workspace", str(ws.raw.parent), "-c", "2d", "-f", "0",
           "1", "--budget", "short", "--epochs", "3", "--iters-per-epoch", "3"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    final0 = _fold_dir(ws, 0) / "checkpoint_final.pth"
    deadline = time.monotonic() + 900
    while not (_fold_dir(ws, 1) / "training_config.json").is_file():
        assert proc.poll() is None, "run ended before fold 1 started"
        assert time.monotonic() < deadline, "fold 0 did not finish in time"
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert final0.is_file() and not (_fold_dir(ws, 1) / "checkpoint_final.pth").is_file()
    stamp = final0.stat().st_mtime_ns
    done = subprocess.run(cmd, capture_output=True, text=True, encoding="utf-8", errors="replace", check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "already done before: 2d/fold_0" in done.stdout
    assert final0.stat().st_mtime_ns == stamp
    assert (_fold_dir(ws, 1) / "checkpoint_final.pth").is_file()
