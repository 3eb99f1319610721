"""Two-process DDP (gloo, CPU) through torchrun: trains and writes one usable result folder."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

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
    lines = (fold / "training_log.jsonl").read_text(encoding="utf-8").splitlines()
    assert len(lines) == 2 and all(json.loads(x)["train_losses"] == json.loads(x)["train_losses"] for x in lines)
    ckpt = torch.load(fold / "checkpoint_final.pth", weights_only=False)
    assert not any(k.startswith("module.") for k in ckpt["network_weights"])
    assert ckpt["current_epoch"] == 2
