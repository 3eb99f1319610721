"""Export: slab-wise resampling equals skimage/scipy, crop and transpose are reverted, labels and regions."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest
import torch
from scipy.ndimage import map_coordinates
from skimage.transform import resize

from autounet.inference.export import (
    CaseGeometry,
    ProbabilityResampling,
    SlabResampler,
    axis_plan,
    export_logits,
)


@dataclass(frozen=True)
class Labels:
    has_regions: bool = False
    regions_class_order: tuple[int, ...] = ()
    foreground_labels: tuple[int, ...] = (1, 2)


def _reference_separate_z(data: np.ndarray, new_shape: tuple[int, ...], axis: int) -> np.ndarray:
    """The reference's algorithm, written out: 2D order-1 resize per slice, then nearest along ``axis``."""
    out = []
    for c in range(data.shape[0]):
        moved = np.moveaxis(data[c], axis, 0)
        plane = tuple(s for i, s in enumerate(new_shape) if i != axis)
        slices = np.stack([resize(s, plane, order=1, mode="edge", anti_aliasing=False) for s in moved])
        tmp = np.moveaxis(slices, 0, axis)
        grid = np.mgrid[tuple(slice(0, n) for n in new_shape)].astype(np.float64)
        coords = np.stack([(tmp.shape[d] / new_shape[d]) * (grid[d] + 0.5) - 0.5 for d in range(3)])
        out.append(map_coordinates(tmp, coords, order=0, mode="nearest"))
    return np.stack(out)


@pytest.mark.parametrize(("shape_in", "shape_out"), [((7, 9, 5), (11, 4, 5)), ((5, 6, 7), (5, 6, 7)),
                                                     ((3, 10, 8), (9, 13, 3))])
def test_linear_resampling_matches_skimage_for_any_slab_size(rng, shape_in, shape_out):
    x = rng.normal(size=(2, *shape_in)).astype(np.float32)
    expected = np.stack([resize(c.astype(np.float64), shape_out, order=1, mode="edge", anti_aliasing=False)
                         for c in x])
    res = SlabResampler(shape_in, shape_out, (1, 1, 1))
    for step in (1, 2, shape_out[0]):
        got = torch.cat([res.slab(torch.from_numpy(x), s, min(shape_out[0], s + step))
                         for s in range(0, shape_out[0], step)], 1)
        np.testing.assert_allclose(got.numpy(), expected, atol=1e-5)


@pytest.mark.parametrize("axis", [0, 2])
def test_separate_z_matches_reference_algorithm(rng, axis):
    shape_in, shape_out = (6, 7, 8), [9, 5, 6]
    shape_out[axis] = 11 if axis == 0 else 13
    x = rng.normal(size=(2, *shape_in))
    expected = _reference_separate_z(x, tuple(shape_out), axis)
    orders = tuple(0 if i == axis else 1 for i in range(3))
    got = SlabResampler(shape_in, shape_out, orders).slab(torch.from_numpy(x), 0, shape_out[0])
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-9)


def test_axis_plan_nearest_rounds_like_scipy():
    i0, i1, w = axis_plan(4, 8, 0)
    src = (np.arange(8) + 0.5) * 0.5 - 0.5
    expected = map_coordinates(np.arange(4.0), [src], order=0, mode="nearest")
    assert np.array_equal(i0, expected.astype(int)) and np.array_equal(i0, i1) and not w.any()
    assert axis_plan(5, 5, 1) is None


def _case(**kw):
    base = dict(shape_before_cropping=(6, 8, 10), bbox=((1, 5), (2, 8), (0, 10)), shape_after_cropping=(4, 6, 10),
                spacing=(1.0, 1.0, 1.0), transpose_forward=(0, 1, 2), transpose_backward=(0, 1, 2))
    base.update(kw)
    return CaseGeometry(**base)


def test_export_reverts_crop_and_argmax_without_resampling(rng):
    logits = rng.normal(size=(3, 4, 6, 10)).astype(np.float32)
    res = export_logits(torch.from_numpy(logits), _case(), config_spacing=(1, 1, 1), labels=Labels(),
                        with_probabilities=True, slab_bytes=1)
    expected = np.zeros((6, 8, 10), np.uint8)
    expected[1:5, 2:8, :] = logits.argmax(0)
    assert res.segmentation.dtype == np.uint8
    np.testing.assert_array_equal(res.segmentation, expected)
    probs = res.probabilities
    assert probs.shape == (3, 6, 8, 10) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(0), 1, atol=1e-6)
    assert np.all(probs[0, 0] == 1) and np.all(probs[1:, 0] == 0)
    e = np.exp(logits - logits.max(0))
    np.testing.assert_allclose(probs[:, 1:5, 2:8], e / e.sum(0), atol=1e-6)


def test_export_reverts_transpose():
    # network axis order (a, b, c) = original (x2, x0, x1): transpose_forward (2, 0, 1), backward (1, 2, 0)
    original = np.arange(4 * 5 * 6).reshape(4, 5, 6) % 3
    transposed = original.transpose(2, 0, 1)
    logits = np.stack([(transposed == k).astype(np.float32) for k in range(3)])
    case = _case(shape_before_cropping=transposed.shape, bbox=tuple((0, s) for s in transposed.shape),
                 shape_after_cropping=transposed.shape, transpose_forward=(2, 0, 1), transpose_backward=(1, 2, 0))
    res = export_logits(logits, case, config_spacing=(1, 1, 1), labels=Labels())
    np.testing.assert_array_equal(res.segmentation, original)


def test_export_resamples_to_the_original_spacing():
    # network grid at spacing 2 along axis 0 -> original spacing 1: twice the rows
    logits = np.zeros((2, 3, 4, 4), np.float32)
    logits[1, 1:] = 5.0
    case = _case(shape_before_cropping=(6, 4, 4), bbox=((0, 6), (0, 4), (0, 4)), shape_after_cropping=(6, 4, 4))
    res = export_logits(logits, case, config_spacing=(2.0, 1.0, 1.0), labels=Labels(foreground_labels=(1,)))
    expected_logit = resize(logits[1].astype(np.float64), (6, 4, 4), order=1, mode="edge", anti_aliasing=False)
    np.testing.assert_array_equal(res.segmentation, (expected_logit > 0).astype(np.uint8))


def test_regions_later_regions_overwrite_earlier():
    logits = np.full((2, 1, 2, 2), -5.0, np.float32)
    logits[0, 0, 0, :] = 5.0  # region 0 -> label 1 in row 0
    logits[1, 0, :, 0] = 5.0  # region 1 -> label 2 in column 0, overwrites (0, 0)
    case = _case(shape_before_cropping=(1, 2, 2), bbox=((0, 1), (0, 2), (0, 2)), shape_after_cropping=(1, 2, 2))
    labels = Labels(has_regions=True, regions_class_order=(1, 2))
    res = export_logits(logits, case, config_spacing=(1, 1, 1), labels=labels, with_probabilities=True)
    np.testing.assert_array_equal(res.segmentation[0], [[2, 1], [2, 0]])
    np.testing.assert_allclose(res.probabilities, 1 / (1 + np.exp(-logits)), rtol=1e-6)


def test_2d_configuration_keeps_the_out_of_plane_axis():
    logits = np.random.default_rng(0).normal(size=(3, 5, 4, 4)).astype(np.float32)
    case = _case(shape_before_cropping=(5, 8, 8), bbox=((0, 5), (0, 8), (0, 8)), shape_after_cropping=(5, 8, 8),
                 spacing=(5.0, 0.5, 0.5))
    res = export_logits(logits, case, config_spacing=(1.0, 1.0), labels=Labels())
    expected = np.stack([resize(c.astype(np.float64), (5, 8, 8), order=1, mode="edge", anti_aliasing=False)
                         for c in logits]).argmax(0)
    np.testing.assert_array_equal(res.segmentation, expected)


def test_uint16_for_many_labels():
    labels = Labels(foreground_labels=tuple(range(1, 300)))
    logits = np.zeros((300, 1, 1, 2), np.float32)
    logits[299, 0, 0, 1] = 1
    case = _case(shape_before_cropping=(1, 1, 2), bbox=((0, 1), (0, 1), (0, 2)), shape_after_cropping=(1, 1, 2))
    res = export_logits(logits, case, config_spacing=(1, 1, 1), labels=labels)
    assert res.segmentation.dtype == np.uint16 and res.segmentation[0, 0, 1] == 299


def test_probability_resampling_from_plans_component():
    from autounet.errors import ConfigError
    from autounet.schemas.plans import ComponentSpec

    default = ProbabilityResampling.from_component(
        ComponentSpec("default", {"is_seg": False, "order": 1, "order_z": 0, "force_separate_z": None}))
    assert default.slab_wise and default.order == 1 and default.order_z == 0
    cubic = ProbabilityResampling.from_component(ComponentSpec("default", {"order": 3}))
    assert not cubic.slab_wise
    with pytest.raises(ConfigError, match="Did you mean"):
        ProbabilityResampling.from_component(ComponentSpec("defualt", {}))


def test_whole_array_fallback_for_other_orders():
    logits = np.random.default_rng(1).normal(size=(2, 4, 5, 6)).astype(np.float32)
    case = _case(shape_before_cropping=(7, 5, 6), bbox=((0, 7), (0, 5), (0, 6)), shape_after_cropping=(7, 5, 6))
    from autounet.schemas.plans import ComponentSpec
    spec = ProbabilityResampling.from_component(ComponentSpec("default", {"order": 3, "order_z": 0}))
    res = export_logits(logits, case, config_spacing=(7 / 4, 1, 1), labels=Labels(foreground_labels=(1,)),
                        resampling=spec)
    from autounet.preprocessing.resample import resample_data_or_seg_to_shape
    expected = resample_data_or_seg_to_shape(logits, (7, 5, 6), (7 / 4, 1, 1), (1, 1, 1), order=3).argmax(0)
    np.testing.assert_array_equal(res.segmentation, expected)


@pytest.mark.parametrize("regions", [False, True])
def test_numpy_and_torch_logits_export_alike(rng, regions):
    logits = rng.normal(size=(3, 6, 9, 7)).astype(np.float32) * 3
    case = _case(shape_before_cropping=(14, 12, 10), bbox=((1, 12), (2, 11), (0, 10)),
                 shape_after_cropping=(11, 9, 10), spacing=(0.6, 1.0, 0.7))
    labels = Labels(has_regions=True, regions_class_order=(1, 2, 3)) if regions else Labels()
    kw = dict(config_spacing=(1.1, 1.0, 1.0), labels=labels, with_probabilities=True, slab_bytes=4096)
    a = export_logits(logits, case, **kw)
    b = export_logits(torch.from_numpy(logits), case, **kw)
    assert (a.segmentation == b.segmentation).mean() >= 0.9999 and a.segmentation.mean() > 0
    np.testing.assert_allclose(a.probabilities, b.probabilities, atol=1e-5)
