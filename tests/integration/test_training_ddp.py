"""Two-process DDP (gloo, CPU) through torchrun: trains and writes one usable result folder."""

from __future__ import annotations

import math
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from autounet.schemas.training_log import read_training_log

DRIVER = Path(__file__).with_name("training_driver.py")
MODEL = "results/Dataset900_Tiny/nnUNetTrainer__nnUNetPlans__3d_fullres"


@pytest.mark.slow
def test_two_process_gloo_run(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    subprocess.run([sys.executable, str(DRIVER), "make", str(ws)], check=True, timeout=120)
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                           "--master-port", "29517", str(DRIVER), "train", str(ws), "0", "2"],
                          capture_output=True, text=True, encoding="utf-8", errors="replace", timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    model = ws / MODEL
    assert sorted(p.name for p in model.iterdir()) == ["dataset.json", "fold_0", "plans.json"]
    fold = model / "fold_0"
    assert (fold / "checkpoint_final.pth").is_file() and (fold / "checkpoint_best.pth").is_file()
    assert len(list(fold.glob("training_log_*.txt"))) == 1  # only rank 0 writes
    records = read_training_log(fold / "training_log.jsonl", strict=True)
    assert [r.epoch for r in records] == [0, 1]  # one writer: each epoch once
    assert all(math.isfinite(r.train_losses) and math.isfinite(r.val_losses) for r in records)
    ckpt = torch.load(fold / "checkpoint_final.pth", weights_only=False)
    assert not any(k.startswith("module.") for k in ckpt["network_weights"])
    assert ckpt["current_epoch"] == 2
    # the file log is the log rank 0 kept (and stored in the checkpoint), epoch by epoch
    assert ckpt["logging"]["values"]["train_losses"] == [r.train_losses for r in records]
    assert ckpt["logging"]["values"]["val_losses"] == [r.val_losses for r in records]
