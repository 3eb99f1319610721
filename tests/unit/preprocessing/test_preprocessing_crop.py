"""Cropping to the non-zero region."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from autounet.preprocessing.crop import bbox_of_mask, crop_to_nonzero, fill_holes, nonzero_mask


@pytest.mark.parametrize("seed", range(5))
def test_fill_holes_equals_scipy(seed: int) -> None:
    mask = np.random.default_rng(seed).random((9, 11, 10)) < 0.6
    np.testing.assert_array_equal(fill_holes(mask), ndimage.binary_fill_holes(mask))


@pytest.mark.parametrize("seed", range(4))
def test_nonzero_mask_equals_scipy_on_padded_data(seed: int) -> None:
    rng = np.random.default_rng(seed)
    data = np.zeros((2, 12, 14, 13), np.float32)
    data[:, 2:10, 3:12, 1:11] = rng.random((2, 8, 9, 10)) < 0.35
    expected = ndimage.binary_fill_holes((data[0] != 0) | (data[1] != 0))
    np.testing.assert_array_equal(nonzero_mask(data), expected)


def test_enclosed_zeros_are_filled_border_zeros_are_not() -> None:
    data = np.ones((1, 7, 7, 7), np.float32)
    data[0, 3, 3, 3] = 0      # enclosed
    data[0, 0, 0, 0] = 0      # on the border
    mask = nonzero_mask(data)
    assert mask[3, 3, 3] and not mask[0, 0, 0]


def test_mask_is_union_over_channels() -> None:
    data = np.zeros((2, 4, 4, 4), np.float32)
    data[0, 0, 0, 0] = 1
    data[1, 3, 3, 3] = -2
    assert nonzero_mask(data).sum() == 2


def test_bbox_half_open_and_empty_mask_keeps_everything() -> None:
    mask = np.zeros((5, 6, 7), bool)
    mask[1:3, 2, 4:7] = True
    assert bbox_of_mask(mask) == [[1, 3], [2, 3], [4, 7]]
    assert bbox_of_mask(np.zeros((5, 6, 7), bool)) == [[0, 5], [0, 6], [0, 7]]


def test_crop_marks_background_outside_mask() -> None:
    data = np.zeros((1, 6, 6, 6), np.float32)
    data[0, 1:5, 1:5, 1:5] = 1.0
    data[0, 2, 2, 2] = 0.0            # hole: inside after filling
    data[0, 1, 1, 1] = 0.0            # a corner zero touching the outside zeros: not a hole
    seg = np.zeros((1, 6, 6, 6), np.uint8)
    seg[0, 1, 1, 1] = 2               # a label outside the mask stays
    out = crop_to_nonzero(data, seg)
    assert out.bbox == [[1, 5], [1, 5], [1, 5]]
    assert out.data.shape == (1, 4, 4, 4) and out.seg.shape == (1, 4, 4, 4)
    assert out.seg[0, 1, 1, 1] == 0   # filled hole
    assert out.seg[0, 0, 0, 0] == 2   # label kept although the image is 0 there
    assert out.seg.dtype == np.int16 and (out.seg == -1).sum() == 0
    seg[0, 1, 1, 1] = 0
    assert crop_to_nonzero(data, seg).seg[0, 0, 0, 0] == -1
    seg[0, 1, 1, 1] = 2
    assert seg[0, 1, 1, 1] == 2 and seg.sum() == 2  # input untouched


def test_crop_without_seg_makes_mask_seg() -> None:
    data = np.zeros((1, 4, 4, 4), np.float32)
    data[0, 1:3, 1:4, 0:2] = 5.0
    data[0, 1, 3, 1] = 0.0
    out = crop_to_nonzero(data)
    assert out.seg.dtype == np.int8
    assert out.seg.min() == -1 and out.seg[0, 0, 2, 1] == -1 and out.seg[0, 0, 0, 0] == 0
