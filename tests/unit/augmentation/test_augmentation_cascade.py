"""Cascade channels: one-hot move, morphology (against SciPy), connected-component removal."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy import ndimage

from autounet.augmentation import cascade
from autounet.augmentation.config import CascadeConfig


def test_move_seg_to_onehot() -> None:
    img = torch.zeros(1, 1, 2, 2)
    seg = torch.tensor([[[[0, 1], [2, 0]], [[2, 2], [0, 1]]]], dtype=torch.int16)  # channel 1 = previous stage
    out_img, out_seg = cascade.move_seg_to_onehot(img, seg, [1, 2])
    assert out_img.shape == (1, 3, 2, 2) and out_seg.shape == (1, 1, 2, 2)
    assert out_img[0, 1].tolist() == [[0, 0], [0, 1]] and out_img[0, 2].tolist() == [[1, 1], [0, 0]]
    assert torch.equal(out_seg[0, 0], seg[0, 0])


@pytest.mark.parametrize("radius", [1.0, 1.5, 2.7, 4.0])
@pytest.mark.parametrize("ndim", [2, 3])
def test_dilation_matches_scipy(rng: np.random.Generator, radius: float, ndim: int) -> None:
    shape = (14, 15, 13)[:ndim]
    masks = rng.random((3, *shape)) > 0.93
    out = cascade.dilate(torch.from_numpy(masks), torch.full((3,), radius, dtype=torch.float64)).numpy()
    ball = cascade.ball_offsets(radius, ndim)
    for b in range(3):
        np.testing.assert_array_equal(out[b], ndimage.binary_dilation(masks[b], structure=ball))


def test_ball_is_the_set_of_offsets_within_the_radius() -> None:
    assert cascade.ball_offsets(1.0, 2).astype(int).tolist() == [[0, 1, 0], [1, 1, 1], [0, 1, 0]]
    assert cascade.ball_offsets(1.5, 3).sum() == 19  # centre, 6 faces, 12 edges (sqrt 2 <= 1.5 < sqrt 3)


def scipy_operator(mask: np.ndarray, op: int, radius: float) -> np.ndarray:
    ball = cascade.ball_offsets(radius, mask.ndim)
    dil = lambda m: ndimage.binary_dilation(m, structure=ball)  # noqa: E731
    ero = lambda m: ndimage.binary_erosion(m, structure=ball, border_value=1)  # noqa: E731
    return {0: dil, 1: ero, 2: lambda m: ero(dil(m)), 3: lambda m: dil(ero(m))}[op](mask)


def test_binary_operators_with_per_sample_radius_and_exclusive_labels(rng: np.random.Generator) -> None:
    labels = ndimage.zoom(rng.integers(0, 3, size=(4, 4, 5, 4)), (1, 4, 4, 4), order=0)  # (4, 16, 20, 16)
    onehot = np.stack([labels == 1, labels == 2], axis=1)
    img = torch.cat([torch.zeros(4, 1, 16, 20, 16), torch.from_numpy(onehot).float()], dim=1)
    p = cascade.BinaryOperatorParams(
        apply=torch.tensor([True, True, True, False]),
        order=torch.tensor([[0, 1], [1, 0], [0, 1], [0, 1]]),
        selected=torch.tensor([[True, True], [True, False], [False, True], [True, True]]),
        operator=torch.tensor([[0, 1], [2, 3], [1, 3], [0, 0]]),
        radius=torch.tensor([[2.0, 1.5], [3.2, 1.0], [1.0, 2.5], [5.0, 5.0]], dtype=torch.float64))
    out = cascade.apply_binary_operator(img, p, first_channel=1).numpy()
    for b in range(4):
        expected = onehot[b].copy()
        if p.apply[b]:
            for step in range(2):
                if not p.selected[b, step]:
                    continue
                lab = int(p.order[b, step])
                before = expected[lab]
                after = scipy_operator(before, int(p.operator[b, step]), float(p.radius[b, step]))
                added = after & ~before
                expected[1 - lab] &= ~added
                expected[lab] = after
        np.testing.assert_array_equal(out[b, 1:].astype(bool), expected, err_msg=f"sample {b}")
        assert not (out[b, 1:].sum(axis=0) > 1).any()
    np.testing.assert_array_equal(out[:, 0], 0)


def test_remove_component_removes_one_small_component_per_selected_label() -> None:
    mask = np.zeros((20, 20), dtype=bool)
    mask[1:3, 1:3] = True     # 4 voxels
    mask[10:13, 10:13] = True  # 9 voxels
    mask[:, 15:] = True       # 100 voxels = 25 % of the patch: never eligible at 15 %
    img = torch.from_numpy(np.stack([mask, mask])[None].astype(np.float32))  # (1, 2, 20, 20)
    p = cascade.RemoveComponentParams(apply=torch.tensor([True]), selected=torch.tensor([[True, True]]),
                                      pick=torch.tensor([[0.1, 0.9]], dtype=torch.float64))
    out = cascade.apply_remove_component(img, p, first_channel=0, max_fraction=0.15).numpy()[0].astype(bool)
    # eligible components in raster order: the 4-voxel one, then the 9-voxel one
    first, second = mask.copy(), mask.copy()
    first[1:3, 1:3] = False
    second[10:13, 10:13] = False
    np.testing.assert_array_equal(out[0], first)
    np.testing.assert_array_equal(out[1], second)


def test_components_are_fully_connected_and_separate_per_mask() -> None:
    masks = np.zeros((2, 4, 4, 4), dtype=bool)
    masks[0, 0, 0, 0] = masks[0, 1, 1, 1] = True  # diagonal neighbours: one component with 26-connectivity
    masks[1, 3, 3, 3] = True
    labelled, sizes, owner = cascade.label_components(masks)
    assert sizes.tolist() == [2, 1] and owner.tolist() == [0, 1]
    assert labelled[0, 0, 0, 0] == labelled[0, 1, 1, 1] != labelled[1, 3, 3, 3]


def test_cascade_draws() -> None:
    g = torch.Generator().manual_seed(0)
    b = cascade.make_binary_operator_params(CascadeConfig(), 20000, 3, g)
    assert abs(b.apply.double().mean().item() - 0.4) < 0.02
    assert abs(b.selected.double().mean().item() - 0.5) < 0.01
    assert b.radius.min() >= 1 and b.radius.max() <= 8
    counts = torch.bincount(b.operator.flatten(), minlength=4).double() / b.operator.numel()
    assert (counts - 0.25).abs().max() < 0.01
    assert (torch.sort(b.order, dim=1).values == torch.arange(3)).all()  # permutations
    r = cascade.make_remove_component_params(CascadeConfig(), 20000, 3, g)
    assert abs(r.apply.double().mean().item() - 0.2) < 0.015
