"""Normalization schemes (formulas from the specification, facts section 4.2)."""

from __future__ import annotations

import numpy as np
import pytest

from autounet.errors import ConfigError, PlansError
from autounet.preprocessing.normalize import NORMALIZERS, NormalizationError, normalize_channel

CT = {"mean": 100.0, "std": 50.0, "percentile_00_5": 0.0, "percentile_99_5": 300.0}


def test_zscore_whole_image() -> None:
    x = np.random.default_rng(0).normal(5, 3, size=(6, 7, 8)).astype(np.float32)
    out = normalize_channel(x.copy(), None, "zscore", {"use_mask_for_norm": False}, intensity_properties=None)
    assert out.dtype == np.float32
    assert abs(out.mean()) < 1e-5 and abs(out.std() - 1) < 1e-5


def test_zscore_with_mask_leaves_outside_untouched() -> None:
    x = np.zeros((4, 5, 6), np.float32)
    x[1:3] = np.random.default_rng(1).normal(10, 2, size=(2, 5, 6))
    mask = np.full(x.shape, -1, np.int8)
    mask[1:3] = 0
    mask[2, 0, 0] = 1
    out = normalize_channel(x.copy(), mask, "zscore", {"use_mask_for_norm": True}, intensity_properties=None)
    inside = mask >= 0
    assert np.all(out[~inside] == 0)
    assert abs(out[inside].mean()) < 1e-5 and abs(out[inside].std() - 1) < 1e-4


def test_zscore_constant_image_does_not_divide_by_zero() -> None:
    out = normalize_channel(np.full((3, 3, 3), 7, np.float32), None, "zscore", {}, intensity_properties=None)
    assert np.all(out == 0)


def test_ct_clips_then_standardizes_with_dataset_statistics() -> None:
    x = np.array([-1000, 0, 100, 200, 3000], np.float32)
    out = normalize_channel(x.copy(), None, "ct", {"use_mask_for_norm": False}, intensity_properties=CT)
    np.testing.assert_allclose(out, [(0 - 100) / 50, -2, 0, 2, (300 - 100) / 50])


def test_ct_needs_statistics() -> None:
    with pytest.raises(PlansError, match="percentile_99_5"):
        normalize_channel(np.zeros(3, np.float32), None, "ct", {}, intensity_properties={"mean": 1, "std": 1,
                                                                                            "percentile_00_5": 0})
    with pytest.raises(PlansError):
        normalize_channel(np.zeros(3, np.float32), None, "ct", {}, intensity_properties=None)


def test_rescale_and_rgb_and_none() -> None:
    x = np.array([2, 4, 6], np.float32)
    np.testing.assert_allclose(normalize_channel(x.copy(), None, "rescale_to_0_1", {}, intensity_properties=None),
                               [0, 0.5, 1])
    np.testing.assert_allclose(normalize_channel(np.array([0, 51, 255], np.float32), None, "rgb_to_0_1", {},
                                                 intensity_properties=None), [0, 0.2, 1])
    np.testing.assert_array_equal(normalize_channel(x.copy(), None, "none", {}, intensity_properties=None), x)
    with pytest.raises(NormalizationError, match=r"\[0, 255\]"):
        normalize_channel(np.array([0, 300], np.float32), None, "rgb_to_0_1", {}, intensity_properties=None)


def test_reference_names_are_aliases_and_typos_are_explained() -> None:
    assert NORMALIZERS.get("CTNormalization") is NORMALIZERS.get("ct")
    assert NORMALIZERS.get("ZScoreNormalization") is NORMALIZERS.get("zscore")
    assert NORMALIZERS.get("NoNormalization") is NORMALIZERS.get("none")
    with pytest.raises(ConfigError, match="Did you mean 'zscore'"):
        NORMALIZERS.get("zscor")
    with pytest.raises(PlansError, match="unknown parameter"):
        normalize_channel(np.zeros(3, np.float32), None, "zscore", {"use_mask": True}, intensity_properties=None)
