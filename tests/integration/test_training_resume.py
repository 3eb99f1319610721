"""A training subprocess is killed mid-run and resumed: the final weights equal an uninterrupted run's (CPU)."""

from __future__ import annotations

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


def _run(ws: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(DRIVER), "train", str(ws), *args], check=True, text=True, encoding="utf-8", errors="replace",
                          capture_output=True, timeout=300)


def _weights(ws: Path) -> dict[str, torch.Tensor]:
    return torch.load(ws / FOLD / "checkpoint_final.pth", weights_only=False)["network_weights"]


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGINT])
def test_killed_run_resumes_bit_identical(tmp_path: Path, sig: int) -> None:
    a, b = tmp_path / "a", tmp_path / "b"
    for ws in (a, b):
        subprocess.run([sys.executable, str(DRIVER), "make", str(ws)], check=True, timeout=120)
    _run(a, "0", "4")

    proc = subprocess.Popen([sys.executable, str(DRIVER), "train", str(b), "0", "4"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, encoding="utf-8", errors="replace")
    latest = b / FOLD / "checkpoint_latest.pth"
    deadline = time.time() + 240
    while not latest.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    assert latest.exists(), proc.communicate()[1][-2000:]
    time.sleep(0.3)  # inside epoch 1 or 2
    os.kill(proc.pid, sig)
    _, err = proc.communicate(timeout=120)
    if sig == signal.SIGINT:
        assert "Interrupted at epoch" in err or proc.returncode == 0, err[-2000:]
    assert not (b / FOLD / "checkpoint_final.pth").exists() or proc.returncode == 0

    _run(b, "0", "4", "--resume")
    wa, wb = _weights(a), _weights(b)
    assert wa.keys() == wb.keys()
    assert all(torch.equal(wa[k], wb[k]) for k in wa)
