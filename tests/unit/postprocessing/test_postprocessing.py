"""Connected-component post-processing: the operation and the reference's decision rule on crafted cases."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from autounet.evaluation import evaluate, load_summary
from autounet.io import ImageGeometry, read_segmentation, write_segmentation
from autounet.labels import LabelSpec
from autounet.postprocessing import (
    PostprocessingStep,
    apply,
    determine,
    keep_largest_component,
    largest_components,
    load_postprocessing,
)

GEOM = ImageGeometry(spacing=(1.0, 1.0, 1.0))


def _write(folder: Path, name: str, seg: np.ndarray) -> None:
    write_segmentation(seg.astype(np.uint8), folder / f"{name}.nii.gz", GEOM)


def test_largest_component_uses_full_connectivity_and_keeps_ties():
    m = np.zeros((5, 5, 5), bool)
    m[0, 0, 0] = m[1, 1, 1] = True  # corner-connected: one component of 2 under 26-connectivity
    m[3, 3, 3] = True
    assert largest_components(m).sum() == 2
    m2 = np.zeros((6, 6, 6), bool)
    m2[0, 0, :2] = True
    m2[4, 4, :2] = True  # two tied components of size 2
    m2[2, 2, 5] = True
    out = largest_components(m2)
    assert out.sum() == 4 and not out[2, 2, 5]
    assert not largest_components(np.zeros((3, 3, 3), bool)).any()
    two_d = np.zeros((4, 4), bool)
    two_d[0, 0] = two_d[1, 1] = True
    assert largest_components(two_d).sum() == 2  # 8-connectivity in 2D


def test_keep_largest_component_of_a_union_sets_removed_voxels_to_background():
    seg = np.zeros((8, 8, 8), np.uint8)
    seg[1:4, 1:4, 1:4] = 1
    seg[1:4, 4:6, 1:4] = 2  # touches label 1: one foreground component
    seg[7, 7, 7] = 2  # isolated
    seg[6, 0, 0] = 3  # not in the union: untouched
    out = keep_largest_component(seg, [1, 2])
    assert out[7, 7, 7] == 0 and out[6, 0, 0] == 3
    assert (out[1:4, 1:6, 1:4] == seg[1:4, 1:6, 1:4]).all()
    only2 = keep_largest_component(seg, [(2,)])
    assert only2[7, 7, 7] == 0
    assert seg[7, 7, 7] == 2  # input untouched


def _crafted_dataset(tmp_path: Path) -> tuple[Path, Path]:
    """Label 1: predictions carry a spurious far-away blob (removing it helps).
    Label 2: the reference has two separate parts that the prediction reproduces (removing hurts)."""
    pred, ref = tmp_path / "pred", tmp_path / "ref"
    pred.mkdir()
    ref.mkdir()
    for i in range(3):
        r = np.zeros((20, 20, 20), np.uint8)
        r[2:8, 2:8, 2:8] = 1
        r[12:16, 12:16, 2:5] = 2
        r[12:15, 2:5, 14:18] = 2
        p = r.copy()
        p[2:8, 2:8, 7] = 0  # imperfect label 1
        p[17 - i: 19, 17:19, 17:19] = 1  # spurious label-1 blob
        _write(ref, f"c{i}", r)
        _write(pred, f"c{i}", p)
    return pred, ref


def test_determine_rejects_all_foreground_but_accepts_the_helpful_class(tmp_path):
    pred, ref = _crafted_dataset(tmp_path)
    decision = determine(pred, ref, labels=[1, 2], nsd_tolerance_mm=1.0)
    assert len(decision.trials) == 3
    step_a, step_1, step_2 = decision.trials
    assert step_a.step.labels_or_regions == (1, 2) and not step_a.accepted
    assert step_a.after.dice["2"] < step_a.before.dice["2"]
    assert step_1.accepted and step_1.step.labels_or_regions == (1,)
    assert not step_2.accepted
    assert decision.steps == (PostprocessingStep(labels_or_regions=(1,)),)
    # the stored decision and the post-processed folder agree with an independent evaluation
    stored = load_postprocessing(pred / "postprocessing.json")
    assert stored.steps == decision.steps
    pp_summary = load_summary(pred / "postprocessed" / "summary.json")
    assert pp_summary.score == pytest.approx(decision.postprocessed.foreground_dice, abs=0)
    assert pp_summary.nsd_tolerance_mm == 1.0 and "NSD" in pp_summary.foreground_mean
    base = evaluate(pred, ref, labels=[1, 2], nsd_tolerance_mm=None)
    assert base.score == decision.baseline.foreground_dice
    assert pp_summary.dice_per_label["1"] > base.dice_per_label["1"]
    assert pp_summary.dice_per_label["2"] == base.dice_per_label["2"]


def test_determine_accepts_foreground_step_when_nothing_gets_worse(tmp_path):
    pred, ref = tmp_path / "pred", tmp_path / "ref"
    pred.mkdir()
    ref.mkdir()
    r = np.zeros((16, 16, 16), np.uint8)
    r[2:8, 2:8, 2:8] = 1
    p = r.copy()
    p[14, 14, 14] = 1
    _write(ref, "a", r)
    _write(pred, "a", p)
    decision = determine(pred, ref, labels=[1], write_postprocessed=False)
    assert [t.accepted for t in decision.trials] == [True]  # one label: no per-class step
    assert decision.postprocessed.foreground_dice == 1.0
    assert not (pred / "postprocessed").exists()


def test_no_improvement_is_rejected(tmp_path):
    pred, ref = tmp_path / "pred", tmp_path / "ref"
    pred.mkdir()
    ref.mkdir()
    r = np.zeros((10, 10, 10), np.uint8)
    r[2:5, 2:5, 2:5] = 1
    _write(ref, "a", r)
    _write(pred, "a", r)
    decision = determine(pred, ref, labels=[1], write_postprocessed=False)
    assert decision.steps == () and not decision.trials[0].accepted  # equal is not an improvement


def test_nan_class_never_vetoes(tmp_path):
    """Label 2 is absent everywhere (NaN mean): step A is still accepted when label 1 improves."""
    pred, ref = tmp_path / "pred", tmp_path / "ref"
    pred.mkdir()
    ref.mkdir()
    r = np.zeros((16, 16, 16), np.uint8)
    r[2:8, 2:8, 2:8] = 1
    p = r.copy()
    p[14, 14, 14] = 1
    _write(ref, "a", r)
    _write(pred, "a", p)
    decision = determine(pred, ref, labels=[1, 2], write_postprocessed=False)
    assert np.isnan(decision.baseline.dice["2"])
    assert decision.trials[0].accepted


def test_region_mode_uses_foreground_labels_for_step_a_and_regions_after(tmp_path):
    spec = LabelSpec.from_labels({"background": 0, "whole": [1, 2], "core": 2}, regions_class_order=[1, 2])
    pred, ref = tmp_path / "pred", tmp_path / "ref"
    pred.mkdir()
    ref.mkdir()
    r = np.zeros((16, 16, 16), np.uint8)
    r[2:8, 2:8, 2:8] = 1
    r[4:6, 4:6, 4:6] = 2
    p = r.copy()
    p[14, 14, 14] = 2
    _write(ref, "a", r)
    _write(pred, "a", p)
    decision = determine(pred, ref, labels=spec, write_postprocessed=False)
    assert decision.trials[0].step.labels_or_regions == (1, 2)
    assert [t.step.labels_or_regions for t in decision.trials[1:]] == [((1, 2),), ((2,),)]
    assert decision.trials[0].accepted


def test_apply_writes_geometry_and_copies_metadata(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    src.mkdir()
    geom = ImageGeometry(spacing=(2.0, 0.5, 0.7), origin=(1.0, 2.0, 3.0))
    seg = np.zeros((6, 6, 6), np.uint8)
    seg[0:3, 0:3, 0:3] = 1
    seg[5, 5, 5] = 1
    write_segmentation(seg, src / "x.nii.gz", geom)
    (src / "plans.json").write_text("{}")
    (src / "x.npz").write_bytes(b"")  # not a segmentation: ignored
    from autounet.schemas.results import PostprocessingDecision
    written = apply(src, out, PostprocessingDecision(steps=(PostprocessingStep(labels_or_regions=(1,)),)),
                    file_ending=".nii.gz")
    assert [p.name for p in written] == ["x.nii.gz"]
    got, g = read_segmentation(out / "x.nii.gz")
    assert got[0, 5, 5, 5] == 0 and got[0].sum() == 27
    assert np.allclose(g.spacing, geom.spacing) and np.allclose(g.origin, geom.origin)
    assert json.loads((out / "plans.json").read_text(encoding="utf-8")) == {}
