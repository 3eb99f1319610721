"""Any dataset, any machine: `autounet run` on one-file RGB cases (synthetic and real HC18 ultrasound), and
time-budgeted runs on real 2D and anisotropic 3D data with a Dice floor.

The Dice floors were measured once on the shared 2-core machine (under load, see
``benchmarks/results/time_budget.md``) and set conservatively below what was measured.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from autounet.cli import main
from autounet.workspace import Workspace

RGB_CHANNELS = {"0": "R", "1": "G", "2": "B"}


def _write_dataset_json(root: Path, n: int, labels: dict[str, int], channels: dict[str, str] = RGB_CHANNELS,
                        **extra: object) -> None:
    spec = {"channel_names": channels, "labels": labels, "numTraining": n, "file_ending": ".png"} | extra
    (root / "dataset.json").write_text(json.dumps(spec, indent=1), encoding="utf-8")


def _synthetic_rgb(root: Path, n_cases: int = 6, size: tuple[int, int] = (48, 40), seed: int = 0) -> None:
    """Coloured discs (red object, label 1) on a greenish noisy background, one RGB PNG per case."""
    rng = np.random.default_rng(seed)
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    yy, xx = np.mgrid[: size[0], : size[1]]
    for i in range(n_cases):
        cy, cx, r = rng.integers(12, size[0] - 12), rng.integers(12, size[1] - 12), rng.integers(6, 11)
        disc = (yy - cy) ** 2 + (xx - cx) ** 2 <= r * r
        rgb = np.stack([rng.normal(60, 20, size), rng.normal(140, 20, size), rng.normal(80, 20, size)], -1)
        rgb[disc] = rng.normal((210, 60, 50), 20, (int(disc.sum()), 3))
        Image.fromarray(np.clip(rgb, 0, 255).astype(np.uint8), mode="RGB").save(root / "imagesTr" /
                                                                                  f"case_{i:03d}_0000.png")
        Image.fromarray(disc.astype(np.uint8), mode="L").save(root / "labelsTr" / f"case_{i:03d}.png")
    _write_dataset_json(root, n_cases, {"background": 0, "disc": 1})


def _summary_dice(ws: Workspace, dataset: str, configuration: str, fold: int) -> float:
    summary = ws.model_dir(dataset, configuration) / f"fold_{fold}" / "validation" / "summary.json"
    return float(json.loads(summary.read_text(encoding="utf-8"))["foreground_mean"]["Dice"])


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_run_on_synthetic_rgb_cases(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    ws = Workspace.at(tmp_path / "ws").ensure()
    _synthetic_rgb(ws.raw / "Dataset992_RGB")
    code = main(["run", "992", "--workspace", str(ws.raw.parent), "-c", "2d", "-f", "0", "--budget", "short",
                 "--epochs", "2", "--iters-per-epoch", "3", "-j", "1"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "chosen model: nnUNetTrainer__nnUNetPlans__2d" in out
    validation = ws.model_dir("Dataset992_RGB", "2d") / "fold_0" / "validation"
    assert len(list(validation.glob("case_*.png"))) == 2  # fold 0 of 6 cases: 2 validation cases, predicted
    assert (ws.results_dataset("Dataset992_RGB") / "report" / "index.html").is_file()
    # predict on new one-file RGB photographs (and a plain file without _0000)
    src = tmp_path / "new"
    src.mkdir()
    img = np.asarray(Image.open(ws.raw / "Dataset992_RGB" / "imagesTr" / "case_001_0000.png"))
    Image.fromarray(img).save(src / "photo.png")
    assert main(["predict", "--workspace", str(ws.raw.parent), "-d", "992", "-c", "2d", "-f", "0", "-i",
                 str(src / "photo.png"), "-o", str(tmp_path / "pred")]) == 0
    assert (tmp_path / "pred" / "photo.png").is_file()


def _hc18_rgb(root: Path, source: Path, n_cases: int, scale: int = 8) -> None:
    """HC18 ultrasound cases as one-file RGB PNGs (grey copied into R, G, B), downscaled ``scale`` times; the
    3-channel filled-ellipse annotations reduced to one channel {0, 1}."""
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    images = sorted(p for p in (source / "training_set").glob("*_HC.png"))[:n_cases]
    for path in images:
        case = path.name.removesuffix("_HC.png")
        grey = Image.open(path).convert("L")
        size = (grey.width // scale, grey.height // scale)
        grey.resize(size, Image.BILINEAR).convert("RGB").save(root / "imagesTr" / f"hc_{case}_0000.png")
        ann = np.asarray(Image.open(path.with_name(f"{case}_HC_Annotation.png")).convert("L")) > 127
        Image.fromarray(ann.astype(np.uint8)).resize(size, Image.NEAREST).save(root / "labelsTr" / f"hc_{case}.png")
    _write_dataset_json(root, len(images), {"background": 0, "head": 1})


#: measured 2026-12-02 on the loaded 2-core machine (load 18-25): HC18 0.2318 (6m budget: 4 epochs x 1 iteration
#: at 25 s per iteration, 5.5 min in all); see benchmarks/results/time_budget.md
HC18_DICE_FLOOR = 0.15
BRAIN_DICE_FLOOR = 0.0  # not measured yet: the test is skipped until it is (see its skip reason)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_time_budget_run_on_hc18_rgb(shared_datasets: Path, tmp_path: Path,
                                     capsys: pytest.CaptureFixture[str]) -> None:
    ws = Workspace.at(tmp_path / "ws").ensure()
    _hc18_rgb(ws.raw / "Dataset993_HC18RGB", shared_datasets / "HC18_FetalHead", n_cases=20)
    code = main(["run", "993", "--workspace", str(ws.raw.parent), "-c", "2d", "-f", "0", "--time-budget", "6m",
                 "-j", "1"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "divided over 1 training(s)" in out and "2d: 1 fold(s)" in out
    dice = _summary_dice(ws, "Dataset993_HC18RGB", "2d", 0)
    print(f"HC18 RGB 2d fold 0 validation Dice {dice:.4f}")
    assert dice >= HC18_DICE_FLOOR
    assert (ws.results_dataset("Dataset993_HC18RGB") / "report" / "index.html").is_file()


def _series(study: Path, kind: str) -> Path:
    (folder,) = [p for p in study.iterdir() if f"-{kind}-" in p.name]
    return folder


@pytest.mark.slow
@pytest.mark.timeout(1800)
@pytest.mark.skip(reason="not calibrated: on the shared 2-core CPU (load ~20) the 3d_fullres plan (patch 20x320x256, "
                         "batch 2) spent its whole 9-minute budget measuring iterations; needs an idle machine or a "
                         "GPU to set BRAIN_DICE_FLOOR")
def test_time_budget_run_on_anisotropic_brain_mri(shared_datasets: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    """Brain-Tumor-Progression (0.69 x 0.69 x 6.5 mm, T1post + FLAIR): the DICOM series converted to NIfTI (a DICOM
    label series cannot be a gt_segmentations file yet), 4 studies, so a hand-written split by patient
    (PGBM-001's two exams and PGBM-003 train, PGBM-008 validates)."""
    from autounet.io import (
        read_images,
        read_segmentation,
        write_image,
        write_segmentation,
    )

    ws = Workspace.at(tmp_path / "ws").ensure()
    root = ws.raw / "Dataset994_BrainMRI"
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    studies = sorted(p for p in (shared_datasets / "BrainTumorProgression_DICOM").glob("PGBM-*/*") if p.is_dir())
    ids = []
    for i, study in enumerate(studies):
        case = f"{study.parent.name.replace('-', '')}_{i}"
        ids.append(case)
        for channel, kind in enumerate(("T1post", "FLAIRreg")):
            image, geometry = read_images([_series(study, kind)])
            write_image(image, root / "imagesTr" / f"{case}_{channel:04d}.nii.gz", geometry)
        seg, geometry = read_segmentation(_series(study, "MaskTumor"))
        write_segmentation(seg, root / "labelsTr" / f"{case}.nii.gz", geometry)
    _write_dataset_json(root, len(ids), {"background": 0, "tumour": 1}, channels={"0": "T1post", "1": "FLAIR"},
                        file_ending=".nii.gz")
    split = [{"train": [c for c in ids if not c.startswith("PGBM008")], "val": [c for c in ids
                                                                           if c.startswith("PGBM008")]}]
    splits = ws.preprocessed / "Dataset994_BrainMRI" / "splits_final.json"
    splits.parent.mkdir(parents=True)
    splits.write_text(json.dumps(split), encoding="utf-8")
    code = main(["run", "994", "--workspace", str(ws.raw.parent), "-c", "3d_fullres", "-f", "0", "--time-budget",
                 "9m", "-j", "1"])
    out = capsys.readouterr().out
    assert code == 0, out
    assert "3d_fullres: 1 fold(s)" in out
    dice = _summary_dice(ws, "Dataset994_BrainMRI", "3d_fullres", 0)
    print(f"BrainTumorProgression 3d_fullres fold 0 validation Dice {dice:.4f}")
    assert dice >= BRAIN_DICE_FLOOR
