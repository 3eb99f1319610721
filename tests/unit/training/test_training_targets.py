"""On-device target preparation: masking, -1 removal, cascade one-hot, regions, deep-supervision pyramid."""

from __future__ import annotations

import torch

from autounet.training.targets import (cascade_inputs, deep_supervision_scales, downsample_targets, mask_outside,
                                       region_targets, remove_negative)


def test_ds_scales_honour_anisotropic_strides() -> None:
    strides = [(1, 1, 1), (1, 2, 2), (2, 2, 2), (2, 2, 2)]
    assert deep_supervision_scales(strides) == [(1.0, 1.0, 1.0), (1.0, 0.5, 0.5), (0.5, 0.25, 0.25)]


def test_downsample_nearest_exact_shapes_and_values() -> None:
    t = torch.arange(16, dtype=torch.int16).reshape(1, 1, 4, 4)
    out = downsample_targets(t, [(1.0, 1.0), (0.5, 0.5)])
    assert out[0] is t and out[1].shape == (1, 1, 2, 2) and out[1].dtype == torch.int16
    # nearest-exact picks the centre-rounded source index floor((i + 0.5) * 2) = 1, 3
    assert out[1][0, 0].tolist() == [[5, 7], [13, 15]]


def test_mask_outside_and_remove_negative() -> None:
    data = torch.ones(1, 2, 3)
    seg = torch.tensor([[[-1, 0, 1]]], dtype=torch.int16)
    masked = mask_outside(data, seg, [1])
    assert masked[0, 0].tolist() == [1, 1, 1] and masked[0, 1].tolist() == [0, 1, 1]
    assert remove_negative(seg).tolist() == [[[0, 0, 1]]]


def test_cascade_one_hot_moves_channel() -> None:
    data = torch.zeros(2, 1, 4)
    seg = torch.tensor([[[0, 1, 2, 1], [1, 2, 0, 0]]] * 2, dtype=torch.int16)
    x, y = cascade_inputs(data, seg, [1, 2])
    assert x.shape == (2, 3, 4) and y.shape == (2, 1, 4)
    assert x[0, 1].tolist() == [1, 0, 0, 0] and x[0, 2].tolist() == [0, 1, 0, 0]


def test_region_targets_with_ignore() -> None:
    seg = torch.tensor([[[0, 1, 2, 3]]], dtype=torch.int16)
    out = region_targets(seg, [(1, 2), (2,)], ignore_label=3)
    assert out.shape == (1, 3, 4)
    assert out[0].tolist() == [[0, 1, 1, 0], [0, 0, 1, 0], [0, 0, 0, 1]]
