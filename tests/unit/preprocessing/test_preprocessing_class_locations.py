"""Class locations: the reference's sampling rule, re-derived here independently."""

from __future__ import annotations

import math

import numpy as np
import pytest

from autounet.labels import LabelSpec
from autounet.preprocessing.class_locations import classes_to_sample, sample_class_locations, sample_count


def _brute_force(seg: np.ndarray, classes, seed: int = 1234) -> dict:
    """The rule as specified: voxels of a class listed label by label (C order within a label), one
    RandomState(seed) for the case, choice(n, k, replace=False) per non-empty class."""
    rng = np.random.RandomState(seed)
    out = {}
    for cls in classes:
        labels = cls if isinstance(cls, tuple) else (cls,)
        coords = np.concatenate([np.argwhere(seg == lab) for lab in labels])
        if len(coords) == 0:
            out[cls] = np.zeros((0, 4), np.int64)
            continue
        k = max(min(10000, len(coords)), math.ceil(0.01 * len(coords)))
        out[cls] = coords[rng.choice(len(coords), k, replace=False)]
    return out


def test_sample_count() -> None:
    assert sample_count(5) == 5
    assert sample_count(10000) == 10000
    assert sample_count(500_000) == 10000
    assert sample_count(2_000_001) == 20001


@pytest.mark.parametrize("classes", [[1, 2, 3], [(1, 2), 3, (2,)], [1, 2, 3, (-1, 0, 1, 2)], [4]])
def test_matches_rule(classes) -> None:
    seg = np.random.default_rng(0).integers(-1, 4, size=(1, 12, 30, 40)).astype(np.int16)
    ours = sample_class_locations(seg, classes)
    expected = _brute_force(seg, classes)
    assert list(ours) == list(expected)
    for key in expected:
        np.testing.assert_array_equal(ours[key], expected[key])
        assert ours[key].dtype == np.int64 and ours[key].shape[1] == 4


def test_large_class_keeps_one_percent() -> None:
    seg = np.ones((1, 20, 100, 600), np.int16)  # 1.2e6 voxels -> 12000 samples
    locations = sample_class_locations(seg, [1])[1]
    assert len(locations) == 12000 and len(np.unique(locations, axis=0)) == 12000
    assert np.all(seg[tuple(locations.T)] == 1)


def test_classes_to_sample() -> None:
    plain = LabelSpec.from_labels({"background": 0, "a": 1, "b": 2})
    assert classes_to_sample(plain) == [1, 2]
    ignore = LabelSpec.from_labels({"background": 0, "a": 1, "b": 2, "ignore": 3})
    assert classes_to_sample(ignore) == [1, 2, (-1, 0, 1, 2)]
    regions = LabelSpec.from_labels({"background": 0, "whole": [1, 2, 3], "core": [2, 3], "enh": 3},
                                    regions_class_order=[1, 2, 3])
    assert classes_to_sample(regions) == [(1, 2, 3), (2, 3), 3]
