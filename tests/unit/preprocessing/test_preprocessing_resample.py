"""Resampling: the separate-z rule, spline orders vs scipy, label resizing rule, registry errors."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from autounet.errors import ConfigError
from autounet.preprocessing import compute_new_shape, resample, resample_data_or_seg_to_shape, separate_z_axis
from autounet.preprocessing._interp import resize_axes
from autounet.preprocessing._labels_resize import resize_labels, resize_labels_generic
from autounet.schemas.plans import ComponentSpec


def test_compute_new_shape_rounds_half_to_even() -> None:
    # 2.5 -> 2 and 3.5 -> 4 (Python's round), 10 * 1.5 / 1 = 15
    assert compute_new_shape((5, 7, 10), (1.0, 1.0, 1.5), (2.0, 2.0, 1.0)) == (2, 4, 15)


@pytest.mark.parametrize(("current", "new", "force", "expected"), [
    ((5.0, 0.8, 0.8), (1.0, 1.0, 1.0), None, 0),          # current spacing anisotropic (6.25 > 3)
    ((0.8, 5.0, 0.8), (0.8, 0.8, 0.8), None, 1),
    ((1.0, 1.0, 1.0), (1.0, 1.0, 4.0), None, 2),          # only the target is anisotropic
    ((3.0, 1.0, 1.0), (3.0, 1.0, 1.0), None, None),       # ratio exactly 3 is not > 3
    ((0.24, 1.25, 1.25), (0.24, 1.25, 1.25), None, None), # two axes share the largest spacing
    ((1.0, 1.0, 1.0), (1.0, 1.0, 1.0), True, None),       # forced, but all axes tie
    ((2.0, 1.0, 1.0), (1.0, 1.0, 1.0), True, 0),          # forced without anisotropy
    ((5.0, 0.8, 0.8), (1.0, 1.0, 1.0), False, None),      # forced off
])
def test_separate_z_axis(current, new, force, expected) -> None:
    assert separate_z_axis(current, new, force_separate_z=force) == expected


@pytest.mark.parametrize("order", [0, 1, 3])
@pytest.mark.parametrize(("shape", "new"), [((9, 13, 6), (20, 7, 6)), ((4, 5, 6), (4, 11, 3)), ((7, 2, 9), (3, 5, 18))])
def test_separable_resize_equals_scipy_zoom(order: int, shape, new) -> None:
    x = np.random.default_rng(0).normal(size=shape)
    expected = ndimage.zoom(x, np.divide(new, shape), order=order, mode="nearest", grid_mode=True)
    assert expected.shape == new
    np.testing.assert_allclose(resize_axes(x, new, order, (0, 1, 2)), expected, atol=1e-12, rtol=0)


def test_float32_resampling_close_to_float64() -> None:
    x = np.random.default_rng(1).normal(size=(1, 8, 20, 20))
    a = resample_data_or_seg_to_shape(x.astype(np.float32), (12, 31, 17), (1, 1, 1), (1, 1, 1))
    b = resample_data_or_seg_to_shape(x, (12, 31, 17), (1, 1, 1), (1, 1, 1))
    assert a.dtype == np.float32 and b.dtype == np.float64
    assert np.abs(a - b).max() < 1e-5


def test_unchanged_shape_returns_input() -> None:
    x = np.zeros((2, 3, 4, 5), np.float32)
    assert resample_data_or_seg_to_shape(x, (3, 4, 5), (1, 1, 1), (2, 2, 2)) is x


def test_images_are_clipped_to_their_input_range() -> None:
    x = np.zeros((1, 6, 6, 6), np.float32)
    x[0, 3:] = 1.0  # a step over- and undershoots with cubic splines
    out = resample_data_or_seg_to_shape(x, (17, 17, 17), (1, 1, 1), (1, 1, 1))
    assert out.min() >= 0.0 and out.max() <= 1.0
    unclipped = ndimage.zoom(x[0].astype(float), 17 / 6, order=3, mode="nearest", grid_mode=True)
    assert unclipped.min() < 0.0 and unclipped.max() > 1.0


def test_separate_z_uses_nearest_along_z_and_per_slice_range() -> None:
    rng = np.random.default_rng(2)
    x = rng.normal(size=(1, 4, 10, 10)).astype(np.float32) * np.arange(1, 5)[None, :, None, None]
    out = resample_data_or_seg_to_shape(x, (10, 10, 10), (5.0, 1.0, 1.0), (2.0, 1.0, 1.0))
    source = np.floor((np.arange(10) + 0.5) * 4 / 10 - 0.5 + 0.5).clip(0, 3).astype(int)
    np.testing.assert_array_equal(out[0], x[0][source])
    # in-plane change: each slice is clipped to its own range
    out = resample_data_or_seg_to_shape(x, (4, 23, 23), (5.0, 1.0, 1.0), (5.0, 0.43, 0.43))
    for z in range(4):
        assert x[0, z].min() <= out[0, z].min() and out[0, z].max() <= x[0, z].max()


def _labels_by_scipy(seg: np.ndarray, new_shape) -> np.ndarray:
    """Independent statement of the rule: per-label linear scores (scipy), argmax, nearest label on exact ties."""
    labels = np.unique(seg)
    factors = np.divide(new_shape, seg.shape)
    scores = np.stack([ndimage.zoom((seg == lab).astype(float), factors, order=1, mode="nearest", grid_mode=True)
                       for lab in labels])
    nn = ndimage.zoom(seg, factors, order=0, mode="nearest", grid_mode=True)
    best = scores.max(axis=0)
    nn_score = np.take_along_axis(scores, np.searchsorted(labels, nn)[None], 0)[0]
    return np.where(nn_score == best, nn, labels[np.argmax(scores, axis=0)]).astype(seg.dtype)


@pytest.mark.parametrize("seed", range(6))
def test_label_resizing_rule(seed: int) -> None:
    rng = np.random.default_rng(seed)
    shape = tuple(int(s) for s in rng.integers(3, 10, size=3))
    new = tuple(max(1, int(round(s * f))) for s, f in zip(shape, rng.choice([0.5, 0.75, 1.0, 1.5, 2.0], size=3)))
    seg = rng.integers(-1, 3, size=shape).astype(np.int16)
    np.testing.assert_array_equal(resize_labels(seg, new, 1), _labels_by_scipy(seg, new))


def test_label_ties_go_to_nearest_neighbour() -> None:
    # doubling: every new boundary voxel sits exactly between two labels (scores 0.5 / 0.5)
    seg = np.array([[[0, 2, 1, 1]]], dtype=np.int16)
    out = resize_labels(seg, (1, 1, 8), 1)
    np.testing.assert_array_equal(out[0, 0], [0, 0, 2, 2, 1, 1, 1, 1])
    np.testing.assert_array_equal(out, _labels_by_scipy(seg, (1, 1, 8)))


def test_generic_label_path_agrees_without_ties() -> None:
    z, y, x = np.mgrid[:9, :14, :11]
    seg = (((z - 4.3) ** 2 + (y - 6.7) ** 2 / 4 + (x - 5.1) ** 2 / 3) < 9).astype(np.int16)
    seg[(z - 3.9) ** 2 + (y - 7.2) ** 2 < 4] = 2
    a, b = resize_labels(seg, (13, 19, 17), 1), resize_labels_generic(seg, (13, 19, 17), 1)
    assert (a != b).mean() < 0.002


def test_segmentation_keeps_dtype_and_labels() -> None:
    seg = np.zeros((1, 6, 12, 12), np.int16)
    seg[0, 2:4, 3:9, 3:9] = 1
    seg[0, :, :2] = -1
    out = resample_data_or_seg_to_shape(seg, (15, 9, 9), (4.0, 1.0, 1.0), (1.6, 1.3, 1.3), is_seg=True, order=1)
    assert out.dtype == np.int16 and set(np.unique(out)) == {-1, 0, 1}


def test_registry_errors() -> None:
    x = np.zeros((1, 2, 2, 2), np.float32)
    with pytest.raises(ConfigError, match="Did you mean 'default'"):
        resample(x, (3, 3, 3), (1, 1, 1), (1, 1, 1), ComponentSpec("defualt", {}))
    with pytest.raises(ConfigError, match="unknown parameter"):
        resample(x, (3, 3, 3), (1, 1, 1), (1, 1, 1), ComponentSpec("default", {"ordr": 3}))
    with pytest.raises(ConfigError, match="order=2"):
        resample(x, (3, 3, 3), (1, 1, 1), (1, 1, 1), {"name": "default", "params": {"order": 2}})
    out = resample(x, (3, 3, 3), (1, 1, 1), (1, 1, 1), {"name": "resample_data_or_seg_to_shape", "params": {}})
    assert out.shape == (1, 3, 3, 3)
