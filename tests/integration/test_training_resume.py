"""A training subprocess is killed at a moment that is guaranteed to be mid-training and resumed: the resumed run
continues from the checkpoint and its final weights equal an uninterrupted run's (CPU, deterministic)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

DRIVER = Path(__file__).with_name("training_driver.py")
FOLD = "results/Dataset900_Tiny/nnUNetTrainer__nnUNetPlans__3d_fullres/fold_0"
EPOCHS = 5


def _run(ws: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(DRIVER), "train", str(ws), *args], check=True, text=True,
                          encoding="utf-8", errors="replace", capture_output=True, timeout=600)


def _weights(ws: Path) -> dict[str, torch.Tensor]:
    return torch.load(ws / FOLD / "checkpoint_final.pth", weights_only=False)["network_weights"]


def _epochs_logged(ws: Path) -> int:
    log = ws / FOLD / "training_log.jsonl"
    return sum(1 for line in log.read_text(encoding="utf-8").splitlines() if line.strip()) if log.is_file() else 0


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_killed_run_resumes_from_its_checkpoint_bit_identical(tmp_path: Path, sig: int) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for ws in (a, b):
        subprocess.run([sys.executable, str(DRIVER), "make", str(ws)], check=True, timeout=120)
    _run(a, "0", str(EPOCHS))

    proc = subprocess.Popen([sys.executable, str(DRIVER), "train", str(b), "0", str(EPOCHS)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, encoding="utf-8",
                            errors="replace")
    latest, final = b / FOLD / "checkpoint_latest.pth", b / FOLD / "checkpoint_final.pth"
    deadline = time.time() + 300
    # mid-training for sure: epoch 0 is logged and checkpointed, and the run has more epochs to go
    while not (latest.exists() and _epochs_logged(b) >= 1) and time.time() < deadline and proc.poll() is None:
        time.sleep(0.02)
    assert proc.poll() is None and latest.exists(), proc.communicate()[1][-2000:]
    os.kill(proc.pid, sig)
    _, err = proc.communicate(timeout=120)
    assert not final.exists(), "the run finished before the kill: not a mid-training kill"
    if sig == signal.SIGINT:
        assert "Interrupted at epoch" in err, err[-2000:]
    saved_epoch = int(torch.load(latest, weights_only=False)["current_epoch"])
    assert 1 <= saved_epoch < EPOCHS

    resumed = _run(b, "0", str(EPOCHS), "--resume")
    assert f"Resuming from {latest}" in resumed.stderr, resumed.stderr[-2000:]
    epochs = [json.loads(line)["epoch"] for line in (b / FOLD / "training_log.jsonl").read_text(
        encoding="utf-8").splitlines() if line.strip()]
    assert epochs[-1] == EPOCHS - 1 and sorted(set(epochs)) == list(range(EPOCHS))  # continued, every epoch once
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
