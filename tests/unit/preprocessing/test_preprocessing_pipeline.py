"""preprocess_case: order of operations, properties, 2D handling, transposes, errors, the plans hash."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from autounet.errors import DatasetError, PlansError, UsageError
from autounet.io.geometry import ImageGeometry
from autounet.labels import LabelSpec
from autounet.preprocessing import preprocess_case, preprocessing_hash
from autounet.preprocessing.crop import crop_to_nonzero

LABELS = LabelSpec.from_labels({"background": 0, "a": 1, "b": 2})


def _case(shape=(10, 20, 18), seed=0):
    rng = np.random.default_rng(seed)
    images = rng.normal(100, 10, size=(1, *shape)).astype(np.float32)
    images[:, :, :2] = 0.0
    seg = np.zeros((1, *shape), np.uint8)
    seg[0, 3:7, 6:14, 5:12] = 1
    seg[0, 4:6, 8:10, 7:9] = 2
    return images, seg


def test_order_of_operations_and_properties(make_plans) -> None:
    plans = make_plans(spacing=(2.0, 0.8, 0.8))
    images, seg = _case()
    geometry = ImageGeometry(spacing=(3.0, 1.0, 1.0))
    out = preprocess_case(images, seg, geometry, plans, "3d_fullres", labels=LABELS, case_id="c0")
    p = out.properties
    assert p.shape_before_cropping == (10, 20, 18)
    assert p.bbox_used_for_cropping == ((0, 10), (2, 20), (0, 18))
    assert p.shape_after_cropping_and_before_resampling == (10, 18, 18)
    assert p.shape_after_resampling == (15, 22, 22) == out.data.shape[1:] == out.seg.shape[1:]
    assert p.spacing_after_resampling == (2.0, 0.8, 0.8) and p.original_spacing == (3.0, 1.0, 1.0)
    assert out.data.dtype == np.float32 and out.seg.dtype == np.int16
    assert set(np.unique(out.seg)) <= {0, 1, 2}
    assert list(p.class_locations) == [1, 2] and p.annotated_key is None
    for key, coords in p.class_locations.items():
        assert np.all(out.seg[tuple(coords.T)] == key)
    # normalized before resampling (the crop's z-score), then a cubic spline zoom clipped to the input range
    cropped = crop_to_nonzero(images, seg.astype(np.int16)).data[0].astype(np.float64)
    normalized = (cropped - cropped.mean()) / cropped.std()
    zoomed = ndimage.zoom(normalized, np.divide((15, 22, 22), normalized.shape), order=3, mode="nearest",
                          grid_mode=True).clip(normalized.min(), normalized.max())
    assert np.abs(out.data[0] - zoomed).max() < 1e-4
    assert images.dtype == np.float32 and images[0, 0, 2, 0] != 0  # input untouched


def test_inference_case_without_labels(make_plans) -> None:
    plans = make_plans(spacing=(3.0, 1.0, 1.0))
    images, _ = _case()
    out = preprocess_case(images, None, ImageGeometry(spacing=(3.0, 1.0, 1.0)), plans, "3d_fullres")
    assert out.properties.class_locations == {}
    assert out.data.shape == (1, 10, 18, 18) and set(np.unique(out.seg)) == {0}
    same = preprocess_case(images, _case()[1], ImageGeometry(spacing=(3.0, 1.0, 1.0)), plans, "3d_fullres",
                           labels=LABELS)
    np.testing.assert_array_equal(out.data, same.data)  # one code path: the labels do not change the image


def test_2d_keeps_out_of_plane_spacing(make_plans) -> None:
    plans = make_plans(spacing=(2.0, 0.5, 0.5))
    images, seg = _case()
    out = preprocess_case(images, seg, ImageGeometry(spacing=(3.0, 1.0, 1.0)), plans, "2d", labels=LABELS)
    assert out.properties.spacing_after_resampling == (3.0, 0.5, 0.5)
    assert out.data.shape == (1, 10, 36, 36)


def test_transpose_is_applied_first(make_plans) -> None:
    plans = make_plans(spacing=(1.0, 3.0, 1.0), transpose=(1, 0, 2))
    images, seg = _case()
    out = preprocess_case(images, seg, ImageGeometry(spacing=(3.0, 1.0, 1.0)), plans, "3d_fullres", labels=LABELS)
    assert out.properties.shape_before_cropping == (20, 10, 18)
    assert out.properties.bbox_used_for_cropping[0] == (2, 20)
    assert out.properties.transpose_forward == (1, 0, 2)
    assert out.data.shape == (1, 18, 10, 18)


def test_ct_and_multi_channel(make_plans) -> None:
    intensity = {"0": {"mean": 100.0, "std": 10.0, "percentile_00_5": 80.0, "percentile_99_5": 120.0}}
    plans = make_plans(spacing=(3.0, 1.0, 1.0), normalization=("ct", "zscore"), intensity=intensity)
    images, seg = _case()
    two = np.concatenate([images, images * 2], axis=0)
    out = preprocess_case(two, seg, ImageGeometry(spacing=(3.0, 1.0, 1.0)), plans, "3d_fullres", labels=LABELS)
    assert out.data[0].min() >= -2.0 - 1e-6 and out.data[0].max() <= 2.0 + 1e-6
    assert abs(out.data[1].mean()) < 1e-4


def test_errors_name_the_case(make_plans) -> None:
    plans = make_plans()
    images, seg = _case()
    geometry = ImageGeometry(spacing=(3.0, 1.0, 1.0))
    with pytest.raises(PlansError, match="2 image channel"):
        preprocess_case(np.concatenate([images, images]), seg, geometry, plans, "3d_fullres", labels=LABELS)
    with pytest.raises(DatasetError, match="case_x.*segmentation shape"):
        preprocess_case(images, seg[:, :5], geometry, plans, "3d_fullres", labels=LABELS, case_id="case_x")
    bad = images.copy()
    bad[0, 5, 5, 5] = np.nan
    with pytest.raises(DatasetError, match="case_x: channel 0 contains NaN"):
        preprocess_case(bad, seg, geometry, plans, "3d_fullres", labels=LABELS, case_id="case_x")
    with pytest.raises(DatasetError, match="non-integer"):
        preprocess_case(images, seg + 0.5, geometry, plans, "3d_fullres", labels=LABELS)
    with pytest.raises(UsageError, match="labels"):
        preprocess_case(images, seg, geometry, plans, "3d_fullres")
    with pytest.raises(PlansError, match="3d_lowres"):
        preprocess_case(images, seg, geometry, plans, "3d_lowres", labels=LABELS)


def test_rgb_out_of_range_names_channel(make_plans) -> None:
    plans = make_plans(normalization=("rgb_to_0_1",))
    images, seg = _case()
    with pytest.raises(DatasetError, match="Case c7, channel 0"):
        preprocess_case(images * 10, seg, ImageGeometry(spacing=(3.0, 1.0, 1.0)), plans, "3d_fullres",
                        labels=LABELS, case_id="c7")


def test_plans_hash_tracks_what_changes_the_arrays(make_plans) -> None:
    base = preprocessing_hash(make_plans(), "3d_fullres", LABELS)
    assert base == preprocessing_hash(make_plans(), "3d_fullres", LABELS)
    assert base != preprocessing_hash(make_plans(spacing=(2.0, 1.0, 1.0)), "3d_fullres", LABELS)
    assert base != preprocessing_hash(make_plans(normalization=("ct",)), "3d_fullres", LABELS)
    assert base != preprocessing_hash(make_plans(), "3d_fullres", LabelSpec.from_labels({"background": 0, "a": 1}))
    plans = make_plans()
    plans.configurations["3d_fullres"]["batch_size"] = 7  # training-only setting
    assert base == preprocessing_hash(plans, "3d_fullres", LABELS)


@pytest.mark.parametrize("transpose", [(0, 1, 2), (2, 0, 1)])
def test_copy_false_gives_the_same_result(make_plans, transpose) -> None:
    plans = make_plans(spacing=(2.0, 0.8, 0.8), transpose=transpose)
    images, seg = _case()
    geometry = ImageGeometry(spacing=(3.0, 1.0, 1.0))
    a = preprocess_case(images, seg, geometry, plans, "3d_fullres", labels=LABELS)
    b = preprocess_case(images.copy(), seg, geometry, plans, "3d_fullres", labels=LABELS, copy=False)
    np.testing.assert_array_equal(a.data, b.data)
    np.testing.assert_array_equal(a.seg, b.seg)
