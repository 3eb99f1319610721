"""Metric tests on synthetic masks with independently derived answers."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import ndimage

from autounet.errors import UsageError
from autounet.evaluation import metrics
from autounet.evaluation.metrics import case_metrics, class_index, surface_metrics


def _cube(shape, lo, hi, value=1):
    seg = np.zeros(shape, dtype=np.uint8)
    seg[tuple(slice(a, b) for a, b in zip(lo, hi))] = value
    return seg


def _full_grid_surface_metrics(ref, pred, spacing, tol):
    """Independent computation: scipy erosion + EDT on the whole (squeezed) grid, no cropping."""
    keep = [i for i, s in enumerate(ref.shape) if s > 1]
    ref = ref.reshape([ref.shape[i] for i in keep]).astype(bool)
    pred = pred.reshape([pred.shape[i] for i in keep]).astype(bool)
    sp = [spacing[i] for i in keep]
    st = ndimage.generate_binary_structure(ref.ndim, 1)
    s_ref = ref & ~ndimage.binary_erosion(ref, st, border_value=0)
    s_pred = pred & ~ndimage.binary_erosion(pred, st, border_value=0)
    d_to_ref = ndimage.distance_transform_edt(~s_ref, sampling=sp)
    d_to_pred = ndimage.distance_transform_edt(~s_pred, sampling=sp)
    a, b = d_to_ref[s_pred], d_to_pred[s_ref]
    nsd = ((a <= tol).sum() + (b <= tol).sum()) / (a.size + b.size)
    hd95 = max(np.percentile(a, 95), np.percentile(b, 95))
    return nsd, hd95


def test_shifted_cube_counts_dice_iou_exact():
    shape = (30, 40, 30)
    ref = _cube(shape, (10, 10, 10), (20, 20, 20))
    pred = _cube(shape, (10, 12, 10), (20, 22, 20))  # shifted by 2 voxels along axis 1
    m = case_metrics(ref, pred, [1], spacing=(3.0, 0.5, 0.8), nsd_tolerance_mm=1.0)["1"]
    assert (m.tp, m.fp, m.fn) == (800, 200, 200)
    assert m.tn == 30 * 40 * 30 - 1200
    assert (m.n_pred, m.n_ref) == (1000, 1000)
    assert m.dice == pytest.approx(1600 / 2000, abs=0)
    assert m.iou == pytest.approx(800 / 1200, abs=0)


@pytest.mark.parametrize("shift,axis,spacing", [(2, 1, (3.0, 0.5, 0.8)), (1, 0, (3.0, 0.5, 0.8)),
                                                 (3, 2, (1.0, 1.0, 2.5))])
def test_shifted_cube_surface_metrics_match_full_grid(shift, axis, spacing):
    shape = (30, 40, 30)
    ref = _cube(shape, (10, 10, 10), (20, 20, 20))
    lo = [10, 10, 10]
    hi = [20, 20, 20]
    lo[axis] += shift
    hi[axis] += shift
    pred = _cube(shape, lo, hi)
    for tol in (0.4, 1.0, 2.0, 5.0):
        nsd, hd95 = surface_metrics(ref.astype(bool), pred.astype(bool), spacing, tolerance_mm=tol)
        nsd_ref, hd95_ref = _full_grid_surface_metrics(ref, pred, spacing, tol)
        assert nsd == pytest.approx(nsd_ref, abs=1e-12)
        assert hd95 == pytest.approx(hd95_ref, abs=1e-12)
    # a pure shift moves no surface voxel further than the shift itself
    shift_mm = shift * spacing[axis]
    assert hd95 <= shift_mm + 1e-9
    assert surface_metrics(ref.astype(bool), pred.astype(bool), spacing, tolerance_mm=shift_mm)[0] == 1.0


def test_identical_masks_are_perfect():
    ref = _cube((12, 12, 12), (2, 3, 4), (9, 10, 8))
    m = case_metrics(ref, ref.copy(), [1], spacing=(1.0, 2.0, 3.0), nsd_tolerance_mm=0.0)["1"]
    assert (m.dice, m.iou, m.nsd, m.hd95) == (1.0, 1.0, 1.0, 0.0)


def test_random_blobs_match_full_grid(rng):
    spacing = (2.5, 0.7, 1.3)
    for _ in range(5):
        ref = ndimage.binary_opening(rng.random((25, 30, 28)) > 0.6)
        pred = ndimage.binary_opening(rng.random((25, 30, 28)) > 0.6)
        pred[:, :3] = True  # touches the image border
        for tol in (0.5, 1.5, 3.0):
            nsd, hd95 = surface_metrics(ref, pred, spacing, tolerance_mm=tol)
            nsd_ref, hd95_ref = _full_grid_surface_metrics(ref, pred, spacing, tol)
            assert nsd == pytest.approx(nsd_ref, abs=1e-12)
            assert hd95 == pytest.approx(hd95_ref, abs=1e-12)


def test_small_blob_far_apart_uses_crop_correctly():
    shape = (40, 60, 50)
    ref = _cube(shape, (2, 2, 2), (5, 6, 7)).astype(bool)
    pred = _cube(shape, (30, 50, 40), (33, 55, 44)).astype(bool)
    spacing = (2.0, 0.5, 1.0)
    got = surface_metrics(ref, pred, spacing, tolerance_mm=1.0)
    want = _full_grid_surface_metrics(ref, pred, spacing, 1.0)
    assert got[0] == pytest.approx(want[0], abs=1e-12) and got[0] == 0.0
    assert got[1] == pytest.approx(want[1], abs=1e-12)


def test_2d_image_stored_as_single_slice_gets_2d_surfaces():
    ref = np.zeros((1, 40, 50), np.uint8)
    ref[0, 10:30, 10:30] = 1
    pred = np.zeros_like(ref)
    pred[0, 12:32, 10:30] = 1
    spacing = (999.0, 0.3, 0.4)
    m = case_metrics(ref, pred, [1], spacing=spacing, nsd_tolerance_mm=0.5)["1"]
    nsd_ref, hd95_ref = _full_grid_surface_metrics(ref, pred, spacing, 0.5)
    assert m.nsd == pytest.approx(nsd_ref, abs=1e-12)
    assert m.hd95 == pytest.approx(hd95_ref, abs=1e-12)
    # interior pixels are not surface: with 3D erosion every pixel of a one-slice mask would be surface
    assert m.hd95 <= 2 * 0.3 + 1e-9


@pytest.mark.parametrize("ref_empty,pred_empty", [(True, True), (True, False), (False, True)])
def test_nan_rules_for_empty_masks(ref_empty, pred_empty):
    shape = (10, 10, 10)
    cube = _cube(shape, (2, 2, 2), (5, 5, 5))
    ref = np.zeros(shape, np.uint8) if ref_empty else cube
    pred = np.zeros(shape, np.uint8) if pred_empty else cube
    m = case_metrics(ref, pred, [1], spacing=(1, 1, 1), nsd_tolerance_mm=1.0)["1"]
    if ref_empty and pred_empty:
        assert math.isnan(m.dice) and math.isnan(m.iou) and math.isnan(m.nsd) and math.isnan(m.hd95)
        assert (m.tp, m.fp, m.fn, m.tn) == (0, 0, 0, 1000)
    else:
        assert m.dice == 0.0 and m.iou == 0.0 and m.nsd == 0.0
        assert math.isnan(m.hd95)
        assert m.n_ref == (0 if ref_empty else 27) and m.n_pred == (0 if pred_empty else 27)


def test_multilabel_regions_and_ignore_label():
    ref = np.zeros((4, 4, 4), np.int16)
    pred = np.zeros((4, 4, 4), np.int16)
    ref[0] = 1
    ref[1] = 2
    ref[3, :, :2] = 9  # ignore
    pred[0, :2] = 1
    pred[0, 2:] = 2
    pred[1] = 2
    pred[3] = 1  # predicted in the ignore area (half counts: ignored) and outside it (FP)
    res = case_metrics(ref, pred, [1, 2, (1, 2)], ignore_label=9)
    # label 1: ref 16 voxels (slice 0); pred slice0 rows 0-1 (8) + slice3 cols 2-3 valid (8)
    m1 = res["1"]
    assert (m1.tp, m1.fp, m1.fn) == (8, 8, 8)
    assert m1.tn == 64 - 8 - (m1.tp + m1.fp + m1.fn)
    m2 = res["2"]
    assert (m2.tp, m2.fp, m2.fn) == (16, 8, 0)
    mr = res["(1, 2)"]
    assert (mr.tp, mr.fp, mr.fn) == (32, 8, 0)
    assert mr.dice == pytest.approx(64 / 72)
    assert m1.nsd is None and m1.hd95 is None


def test_ignore_label_excluded_from_surface_masks():
    ref = np.zeros((10, 10, 10), np.uint8)
    ref[2:6, 2:6, 2:6] = 1
    ref[7:, :, :] = 5  # ignore region
    pred = ref.copy()
    pred[pred == 5] = 1  # prediction covers the ignore region: must not count
    m = case_metrics(ref, pred, [1], spacing=(1, 1, 1), ignore_label=5, nsd_tolerance_mm=0.0)["1"]
    assert (m.dice, m.nsd, m.hd95) == (1.0, 1.0, 0.0)


def test_class_index_handles_floats_large_and_absent_values():
    seg = np.array([0, 1, 2, 70000, 5], dtype=np.int64)
    assert class_index(seg, [2, 70000]).tolist() == [0, 0, 1, 2, 0]
    assert class_index(seg.astype(np.float32), [1, 5]).tolist() == [0, 1, 0, 0, 2]
    assert class_index(np.array([-1, 3], dtype=np.int8), [3]).tolist() == [0, 1]


def test_confusion_matrix_chunking(monkeypatch, rng):
    ref = rng.integers(0, 4, size=(7, 11, 13))
    pred = rng.integers(0, 4, size=(7, 11, 13))
    full = case_metrics(ref, pred, [1, 2, 3, (1, 3)], ignore_label=0)
    monkeypatch.setattr(metrics, "_CHUNK_VOXELS", 17)
    chunked = case_metrics(ref, pred, [1, 2, 3, (1, 3)], ignore_label=0)
    assert full == chunked
    valid = ref != 0
    for lab in (1, 2, 3):
        r, p = (ref == lab) & valid, (pred == lab) & valid
        assert full[str(lab)].tp == int((r & p).sum())
        assert full[str(lab)].fp == int((~r & p & valid).sum())


def test_shape_mismatch_is_an_error():
    with pytest.raises(UsageError, match="shape"):
        case_metrics(np.zeros((2, 2, 2)), np.zeros((2, 2, 3)), [1])
