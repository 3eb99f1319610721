"""Deep-supervision targets, regions, outside-label removal, masking."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from autounet.augmentation import targets


def test_deep_supervision_scales_follow_cumulative_strides() -> None:
    strides = [[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2], [2, 2, 1]]
    assert targets.deep_supervision_scales(strides) == (
        (1.0, 1.0, 1.0), (1.0, 0.5, 0.5), (0.5, 0.25, 0.25), (0.25, 0.125, 0.125))
    assert targets.deep_supervision_scales([[1, 1], [2, 2]]) == ((1.0, 1.0),)


def test_downsampling_is_nearest_exact(rng: np.random.Generator) -> None:
    seg = torch.from_numpy(rng.integers(0, 4, size=(2, 1, 10, 12, 9)).astype(np.int16))
    scale = (0.5, 0.25, 0.5)
    out = targets.downsample_target(seg, scale)
    size = [round(n * s) for n, s in zip((10, 12, 9), scale)]  # 5, 3, 4 (round(4.5) = 4)
    assert list(out.shape[2:]) == size and out.dtype == torch.int16
    idx = [np.minimum(np.floor((np.arange(m) + 0.5) * n / m).astype(int), n - 1) for n, m in zip((10, 12, 9), size)]
    expected = seg.numpy()[:, :, idx[0]][:, :, :, idx[1]][:, :, :, :, idx[2]]
    np.testing.assert_array_equal(out.numpy(), expected)


def test_deep_supervision_targets_full_resolution_first() -> None:
    seg = torch.zeros(1, 1, 8, 8, dtype=torch.int16)
    out = targets.deep_supervision_targets(seg, [(1.0, 1.0), (0.5, 0.5), (0.25, 0.25)])
    assert [tuple(t.shape[2:]) for t in out] == [(8, 8), (4, 4), (2, 2)]
    assert out[0] is seg
    with pytest.raises(ValueError, match="do not match"):
        targets.deep_supervision_targets(seg, [(1.0, 1.0, 1.0)])


def test_regions_with_ignore_channel_last() -> None:
    seg = torch.tensor([[[0, 1, 2, 3, 4]]], dtype=torch.int16)[:, :, None]  # (1, 1, 1, 5)
    out = targets.to_regions(seg, [(1, 2, 3), (2, 3), 3], ignore_label=4)
    assert out.dtype == torch.bool and out.shape == (1, 4, 1, 5)
    assert out[0, :, 0].int().tolist() == [[0, 1, 1, 1, 0], [0, 0, 1, 1, 0], [0, 0, 0, 1, 0], [0, 0, 0, 0, 1]]


def test_remove_label_and_mask() -> None:
    seg = torch.tensor([[[[-1, 0, 2], [1, -1, 3]]]], dtype=torch.int16)
    assert targets.remove_label(seg).tolist() == [[[[0, 0, 2], [1, 0, 3]]]]
    img = torch.ones(1, 2, 2, 3)
    out = targets.mask_image(img, seg, [1])
    assert out[0, 0].tolist() == [[1, 1, 1], [1, 1, 1]]
    assert out[0, 1].tolist() == [[0, 1, 1], [1, 0, 1]]
    assert targets.mask_image(img, seg, []) is img
