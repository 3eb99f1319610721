"""Evaluation on real data: parity with the reference's overlap metrics, surface metrics vs a full-grid EDT."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage

from autounet.cli import main
from autounet.evaluation import load_summary
from autounet.evaluation.metrics import surface_metrics
from autounet.io import read_segmentation, write_segmentation

pytestmark = pytest.mark.integration
GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden" / "evaluation" / "hippocampus_reference_summary.json"


def _perturb(seg: np.ndarray, p: dict) -> np.ndarray:
    pred = np.roll(seg, p["shift"], axis=p["axis"]).copy()
    mask = pred == p["label"]
    if p["grow"]:
        pred[ndimage.binary_dilation(mask) & (pred == 0)] = p["label"]
    else:
        pred[mask & ~ndimage.binary_erosion(mask)] = 0
    return pred


@pytest.fixture(scope="module")
def perturbed(shared_datasets, tmp_path_factory):
    golden = json.loads(GOLDEN.read_text(encoding="utf-8"))
    root = tmp_path_factory.mktemp("hippo")
    ref, pred = root / "ref", root / "pred"
    ref.mkdir()
    pred.mkdir()
    for name, p in golden["perturbations"].items():
        seg, geometry = read_segmentation(shared_datasets / "Hippocampus" / "labels" / name)
        write_segmentation(seg[0], ref / name, geometry)
        write_segmentation(_perturb(seg[0], p), pred / name, geometry)
    return ref, pred, golden["reference_summary"]


def test_overlap_metrics_equal_the_reference(perturbed):
    ref, pred, reference = perturbed
    assert main(["evaluate", str(pred), str(ref), "-l", "1", "2", "1,2", "-j", "2", "--no-progress"]) == 0
    ours = load_summary(pred / "summary.json")
    theirs = {c["prediction_file"]: c["metrics"] for c in reference["metric_per_case"]}
    assert len(ours.metric_per_case) == len(theirs) == 24
    for case in ours.metric_per_case:
        expected = theirs[Path(case.prediction_file).name]
        for key, metrics in case.metrics.items():
            got = metrics.to_dict()
            for m in ("Dice", "IoU", "TP", "FP", "FN", "TN", "n_pred", "n_ref"):
                want = expected[key][m]
                assert got[m] == want or (math.isnan(got[m]) and math.isnan(want)), (case.case, key, m)
    for key in ("1", "2", "(1, 2)"):
        assert ours.mean[key]["Dice"] == pytest.approx(reference["mean"][key]["Dice"], abs=1e-12)
    assert ours.foreground_mean["Dice"] == pytest.approx(reference["foreground_mean"]["Dice"], abs=1e-12)


def test_surface_metrics_match_a_full_grid_computation(perturbed):
    ref_dir, pred_dir, _ = perturbed
    for path in sorted(ref_dir.glob("*.nii.gz"))[:6]:
        ref, geometry = read_segmentation(path)
        pred, _ = read_segmentation(pred_dir / path.name)
        for label in (1, 2):
            r, p = ref[0] == label, pred[0] == label
            st = ndimage.generate_binary_structure(3, 1)
            sr, sp = r & ~ndimage.binary_erosion(r, st), p & ~ndimage.binary_erosion(p, st)
            a = ndimage.distance_transform_edt(~sr, sampling=geometry.spacing)[sp]
            b = ndimage.distance_transform_edt(~sp, sampling=geometry.spacing)[sr]
            nsd, hd95 = surface_metrics(r, p, geometry.spacing, tolerance_mm=1.0)
            assert nsd == pytest.approx(((a <= 1.0).sum() + (b <= 1.0).sum()) / (a.size + b.size), abs=1e-12)
            assert hd95 == pytest.approx(max(np.percentile(a, 95), np.percentile(b, 95)), abs=1e-12)
