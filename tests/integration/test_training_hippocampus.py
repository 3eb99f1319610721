"""The short budget on real data: Hippocampus fold 0, 2d, ``--budget short`` on the CPU (about 7 min on 2 idle cores;
see benchmarks/results/training.md). Reaches a validation Dice of at least 0.60, and ``autounet predict`` +
``autounet evaluate`` on the fold's validation images reproduce the end-of-training validation summary exactly."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest


def _autounet(ws: Path, *args: str, timeout: int = 3600) -> None:
    subprocess.run([sys.executable, "-m", "autounet", *args[:1], "--quiet", "--workspace", str(ws), *args[1:]],
                   check=True, timeout=timeout)


@pytest.mark.slow
@pytest.mark.integration
def test_short_budget_hippocampus_reaches_dice(shared_datasets: Path, tmp_path: Path) -> None:
    src = shared_datasets / "Hippocampus"
    ws = tmp_path / "ws"
    _autounet(ws, "import", "--images", str(src / "images"), "--labels", str(src / "labels"), "--id", "4",
              "--name", "Hippocampus", "--channel", "MRI", "--label", "background=0", "--label", "Anterior=1",
              "--label", "Posterior=2", "--link")
    _autounet(ws, "fingerprint", "4")
    _autounet(ws, "plan", "4", "-c", "2d")
    _autounet(ws, "preprocess", "4", "-c", "2d")
    # the fixed short schedule (16 x 50); `--budget short` alone is now a 10-minute time budget
    _autounet(ws, "train", "4", "2d", "0", "--budget", "short", "--epochs", "16", "--iters-per-epoch", "50",
              "--seed", "0", timeout=3 * 3600)
    fold = ws / "results" / "Dataset004_Hippocampus" / "nnUNetTrainer__nnUNetPlans__2d" / "fold_0"
    records = [json.loads(x) for x in (fold / "training_log.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(records) == 16
    assert max(r["mean_fg_dice"] for r in records[-3:]) >= 0.60
    assert (fold / "checkpoint_final.pth").is_file() and (fold / "progress.png").is_file()
    validation = json.loads((fold / "validation" / "summary.json").read_text(encoding="utf-8"))
    assert validation["foreground_mean"]["Dice"] >= 0.60

    # the same cases through the public predict + evaluate commands give the same summary, to the last digit
    splits = json.loads((ws / "preprocessed" / "Dataset004_Hippocampus" / "splits_final.json").read_text(
        encoding="utf-8"))
    images = ws / "raw" / "Dataset004_Hippocampus" / "imagesTr"
    inputs = [str(images / f"{case}_0000.nii.gz") for case in splits[0]["val"]]
    _autounet(ws, "predict", "-i", *inputs, "-o", str(tmp_path / "pred"), "-d", "4", "-c", "2d", "-f", "0")
    _autounet(ws, "evaluate", str(tmp_path / "pred"), str(ws / "raw" / "Dataset004_Hippocampus" / "labelsTr"),
              "-d", "4")
    again = json.loads((tmp_path / "pred" / "summary.json").read_text(encoding="utf-8"))
    def per_case(summary: dict) -> list:
        return [(c["case"], c["metrics"]) for c in summary["metric_per_case"]]

    assert per_case(again) == per_case(validation)
    assert again["mean"] == validation["mean"] and again["foreground_mean"] == validation["foreground_mean"]
