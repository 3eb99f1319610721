"""Spatial transform: crop, rotation, scaling, label-preserving resampling (against NumPy/SciPy)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from autounet.augmentation import spatial
from autounet.augmentation.config import SpatialConfig

ATOL_IMAGE = 1e-4  # float32 grid coordinates vs float64 SciPy: interpolation weights agree to ~1e-6


def params(angles: list[list[float]], scales: list[list[float]], *, rotate: bool = True,
           scale: bool = True) -> spatial.SpatialParams:
    a = torch.tensor(angles, dtype=torch.float64)
    s = torch.tensor(scales, dtype=torch.float64)
    b = a.shape[0]
    return spatial.SpatialParams(rotate=torch.full((b,), rotate), scale=torch.full((b,), scale), angles=a, scales=s)


def scipy_reference(x: np.ndarray, matrix: np.ndarray, out_shape: tuple[int, ...], *, order: int,
                    cval: float = 0.0) -> np.ndarray:
    """Output voxel o samples the input at A (o - (m-1)/2) + c, c = floor(n/2) - m//2 + (m-1)/2."""
    n, m = np.asarray(x.shape, float), np.asarray(out_shape, float)
    centre = np.floor(n / 2) - np.floor(m / 2) + (m - 1) / 2
    offset = centre - matrix @ ((m - 1) / 2)
    return ndimage.affine_transform(x.astype(np.float64), matrix, offset=offset, output_shape=out_shape,
                                    order=order, mode="grid-constant", cval=cval)


def test_no_rotation_no_scaling_is_a_plain_centre_crop(rng: np.random.Generator) -> None:
    img = torch.from_numpy(rng.normal(size=(3, 2, 9, 10, 11)).astype(np.float32))
    seg = torch.from_numpy(rng.integers(-1, 3, size=(3, 1, 9, 10, 11)).astype(np.int16))
    p = params([[0, 0, 0]] * 3, [[1, 1, 1]] * 3, rotate=False, scale=False)
    out, out_seg = spatial.apply(img, seg, p, patch_size=(5, 6, 7))
    # start = n//2 - m//2 per axis: (4-2, 5-3, 5-3)
    assert torch.equal(out, img[:, :, 2:7, 2:8, 2:9])
    assert torch.equal(out_seg, seg[:, :, 2:7, 2:8, 2:9])


def test_identity_through_grid_sample_equals_the_crop(rng: np.random.Generator) -> None:
    img = torch.from_numpy(rng.normal(size=(2, 1, 13, 12)).astype(np.float32))
    seg = torch.from_numpy(rng.integers(0, 4, size=(2, 1, 13, 12)).astype(np.int16))
    p = params([[0.0]] * 2, [[1.0, 1.0]] * 2)  # flagged as rotated/scaled, but with identity values
    out, out_seg = spatial.apply(img, seg, p, patch_size=(8, 7))
    crop = spatial.centre_crop(img, (8, 7), pad_value=0)
    assert torch.allclose(out, crop, atol=1e-5)
    assert torch.equal(out_seg, spatial.centre_crop(seg, (8, 7), pad_value=-1))


def test_crop_pads_image_with_zero_and_seg_with_minus_one() -> None:
    img = torch.ones(1, 1, 4, 4)
    seg = torch.ones(1, 1, 4, 4, dtype=torch.int16)
    p = params([[0.0]], [[1.0, 1.0]], rotate=False, scale=False)
    out, out_seg = spatial.apply(img, seg, p, patch_size=(6, 4))
    assert out[0, 0, :, 0].tolist() == [0, 1, 1, 1, 1, 0]
    assert out_seg[0, 0, :, 0].tolist() == [-1, 1, 1, 1, 1, -1]


def test_rotation_by_90_degrees_2d_equals_rot90(rng: np.random.Generator) -> None:
    x = rng.normal(size=(7, 7)).astype(np.float32)
    s = rng.integers(0, 5, size=(7, 7)).astype(np.int16)
    p = params([[math.pi / 2]], [[1.0, 1.0]], scale=False)
    out, out_seg = spatial.apply(torch.from_numpy(x)[None, None], torch.from_numpy(s)[None, None], p,
                                 patch_size=(7, 7))
    # A = R(90°) maps output offset (o0, o1) to input (-o1, o0): np.rot90 with k=-1
    np.testing.assert_allclose(out[0, 0].numpy(), np.rot90(x, k=-1), atol=1e-5)
    np.testing.assert_array_equal(out_seg[0, 0].numpy(), np.rot90(s, k=-1))


@pytest.mark.parametrize(("axis", "plane"), [(0, (1, 2)), (1, (2, 0)), (2, (0, 1))])
def test_rotation_by_90_degrees_3d_about_each_axis_equals_rot90(rng: np.random.Generator, axis: int,
                                                                 plane: tuple[int, int]) -> None:
    x = rng.normal(size=(6, 6, 6)).astype(np.float32)
    s = rng.integers(0, 3, size=(6, 6, 6)).astype(np.int16)
    angles = [0.0, 0.0, 0.0]
    angles[axis] = math.pi / 2
    out, out_seg = spatial.apply(torch.from_numpy(x)[None, None], torch.from_numpy(s)[None, None],
                                 params([angles], [[1.0, 1.0, 1.0]], scale=False), patch_size=(6, 6, 6))
    # rotation in plane (i, j) takes e_i to e_j: output offset o samples o_i' = -o_j, o_j' = o_i
    expected = np.rot90(x, k=-1, axes=plane)
    np.testing.assert_allclose(out[0, 0].numpy(), expected, atol=1e-5)
    np.testing.assert_array_equal(out_seg[0, 0].numpy(), np.rot90(s, k=-1, axes=plane))


def test_affine_matrix_composition_matches_the_reference_formula() -> None:
    a = [0.3, -0.2, 0.5]
    p = params([a], [[1.1, 1.1, 1.1]])

    def rx(t: float) -> np.ndarray:
        return np.array([[1, 0, 0], [0, np.cos(t), -np.sin(t)], [0, np.sin(t), np.cos(t)]])

    def ry(t: float) -> np.ndarray:
        return np.array([[np.cos(t), 0, np.sin(t)], [0, 1, 0], [-np.sin(t), 0, np.cos(t)]])

    def rz(t: float) -> np.ndarray:
        return np.array([[np.cos(t), -np.sin(t), 0], [np.sin(t), np.cos(t), 0], [0, 0, 1]])

    expected = rz(a[2]) @ ry(a[1]) @ rx(a[0]) @ np.diag([1.1] * 3)
    np.testing.assert_allclose(spatial.affine_matrices(p)[0].numpy(), expected, atol=1e-12)


@pytest.mark.parametrize(("angles", "scales", "in_shape", "out_shape"), [
    ([[0.4]], [[1.3, 1.3]], (21, 18), (12, 10)),
    ([[-2.5]], [[0.75, 0.9]], (16, 16), (16, 16)),
    ([[0.3, -0.4, 0.2]], [[1.2, 1.2, 1.2]], (14, 15, 13), (8, 9, 7)),
    ([[0.0, 0.0, 0.0]], [[0.7, 0.7, 0.7]], (11, 12, 10), (11, 12, 10)),
])
def test_image_resampling_matches_scipy_affine_transform(rng: np.random.Generator, angles: list[list[float]],
                                                         scales: list[list[float]], in_shape: tuple[int, ...],
                                                         out_shape: tuple[int, ...]) -> None:
    x = rng.normal(size=in_shape)
    p = params(angles, scales)
    out, _ = spatial.apply(torch.from_numpy(x).float()[None, None], None, p, patch_size=out_shape)
    expected = scipy_reference(x, spatial.affine_matrices(p)[0].numpy(), out_shape, order=1)
    np.testing.assert_allclose(out[0, 0].numpy(), expected, atol=ATOL_IMAGE)


def scipy_label_reference(seg: np.ndarray, matrix: np.ndarray, out_shape: tuple[int, ...]
                          ) -> tuple[np.ndarray, np.ndarray]:
    """Per-label linear interpolation of indicators (outside = label -1), winner and its margin."""
    labels = np.union1d(np.unique(seg), [-1])
    scores = np.stack([scipy_reference((seg == u).astype(float), matrix, out_shape, order=1,
                                       cval=1.0 if u == -1 else 0.0) for u in labels])
    top2 = np.sort(scores, axis=0)[-2:]
    return labels[np.argmax(scores, axis=0)], top2[1] - top2[0]


@pytest.mark.parametrize(("angles", "scales", "in_shape", "out_shape"), [
    ([[0.7]], [[1.35, 1.35]], (24, 22), (16, 14)),
    ([[0.5, 0.3, -0.6]], [[1.4, 1.4, 1.4]], (16, 16, 16), (10, 11, 9)),
])
def test_label_resampling_matches_per_label_interpolation(rng: np.random.Generator, angles: list[list[float]],
                                                          scales: list[list[float]], in_shape: tuple[int, ...],
                                                          out_shape: tuple[int, ...]) -> None:
    coarse = rng.integers(-1, 4, size=tuple(max(2, n // 4) for n in in_shape))
    seg = ndimage.zoom(coarse, [n / c for n, c in zip(in_shape, coarse.shape)], order=0)[
        tuple(slice(0, n) for n in in_shape)].astype(np.int16)
    p = params(angles, scales)
    _, out = spatial.apply(torch.zeros(1, 1, *in_shape), torch.from_numpy(seg)[None, None], p,
                           patch_size=out_shape)
    expected, margin = scipy_label_reference(seg, spatial.affine_matrices(p)[0].numpy(), out_shape)
    clear = margin > 1e-3  # where two labels tie, the nearest neighbour decides (checked separately)
    assert clear.mean() > 0.8
    np.testing.assert_array_equal(out[0, 0].numpy()[clear], expected[clear])


def test_labels_never_mix_and_minus_one_survives(rng: np.random.Generator) -> None:
    seg = np.zeros((20, 20), dtype=np.int16)
    seg[:, :7] = -1  # outside the non-zero mask
    seg[5:15, 8:12] = 2
    seg[5:15, 12:16] = 4  # touching labels 2 and 4: a linear mix would create 3
    p = params([[0.35]], [[1.2, 1.2]])
    _, out = spatial.apply(torch.zeros(1, 1, 20, 20), torch.from_numpy(seg)[None, None], p, patch_size=(14, 14))
    values = set(np.unique(out.numpy()).tolist())
    assert values <= {-1, 0, 2, 4}
    assert -1 in values and 2 in values and 4 in values


def test_ties_are_settled_by_the_nearest_neighbour() -> None:
    # scaling by exactly 2 around the centre puts every other sample point midway between two input voxels
    seg = np.zeros((1, 8), dtype=np.int16)
    seg[0, 4:] = 1
    seg = np.repeat(seg, 8, axis=0)
    p = params([[0.0]], [[1.0, 0.5]], rotate=False)
    _, out = spatial.apply(torch.zeros(1, 1, 8, 8), torch.from_numpy(seg)[None, None], p, patch_size=(8, 8))
    _, nearest = spatial.apply(torch.zeros(1, 1, 8, 8), torch.from_numpy(seg)[None, None], p, patch_size=(8, 8),
                               segmentation_mode="nearest")
    assert torch.equal(out, nearest)
    assert set(out.unique().tolist()) == {0, 1}


def test_nearest_mode_matches_nearest_sampling(rng: np.random.Generator) -> None:
    seg = rng.integers(0, 6, size=(12, 12)).astype(np.int16)
    p = params([[0.2]], [[1.1, 1.1]])
    _, out = spatial.apply(torch.zeros(1, 1, 12, 12), torch.from_numpy(seg)[None, None], p, patch_size=(10, 10),
                           segmentation_mode="nearest")
    matrix = spatial.affine_matrices(p)[0].numpy()
    m = np.array([10.0, 10.0])
    centre = np.array([6 - 5 + 4.5] * 2)
    coords = np.stack(np.meshgrid(np.arange(10), np.arange(10), indexing="ij"), -1) - (m - 1) / 2
    src = coords @ matrix.T + centre
    idx = np.floor(src + 0.5).astype(int)  # away from exact .5 ties for this angle
    inside = np.all((idx >= 0) & (idx < 12), axis=-1)
    expected = np.full((10, 10), -1)
    expected[inside] = seg[idx[inside][:, 0], idx[inside][:, 1]]
    np.testing.assert_array_equal(out[0, 0].numpy(), expected)


def test_only_resampled_samples_are_interpolated(rng: np.random.Generator) -> None:
    img = torch.from_numpy(rng.normal(size=(4, 1, 10, 10)).astype(np.float32))
    p = spatial.SpatialParams(rotate=torch.tensor([True, False, False, False]),
                              scale=torch.tensor([False, False, True, False]),
                              angles=torch.tensor([[0.3], [0.0], [0.0], [0.0]], dtype=torch.float64),
                              scales=torch.tensor([[1, 1], [1, 1], [1.2, 1.2], [1, 1]], dtype=torch.float64))
    out, _ = spatial.apply(img, None, p, patch_size=(6, 6))
    crop = img[:, :, 2:8, 2:8]
    assert torch.equal(out[1], crop[1]) and torch.equal(out[3], crop[3])
    assert not torch.allclose(out[0], crop[0]) and not torch.allclose(out[2], crop[2])


def test_parameter_draws_rates_and_ranges() -> None:
    cfg = SpatialConfig(p_synchronize_scaling=1.0)
    g = torch.Generator().manual_seed(3)
    rot = (-math.pi / 6, math.pi / 6)
    p = spatial.make_params(cfg, 40000, ndim=3, rotation_rad=rot, generator=g)
    tol = 5 * math.sqrt(0.2 * 0.8 / 40000)
    assert abs(p.rotate.double().mean().item() - 0.2) < tol
    assert abs(p.scale.double().mean().item() - 0.2) < tol
    assert abs(p.resample.double().mean().item() - (1 - 0.8 * 0.8)) < 5 * math.sqrt(0.36 * 0.64 / 40000)
    a = p.angles[p.rotate]
    assert a.min() >= rot[0] and a.max() <= rot[1] and a.abs().max() > 0.5
    assert (p.angles[~p.rotate] == 0).all()
    s = p.scales[p.scale]
    assert s.min() >= 0.7 and s.max() <= 1.4
    assert (s == s[:, :1]).all()  # synchronised across axes
    assert (p.scales[~p.scale] == 1).all()
    # samples draw independently: angles about different axes and of different samples are uncorrelated
    corr = np.corrcoef(a[:, 0].numpy(), a[:, 1].numpy())[0, 1]
    assert abs(corr) < 0.05


def test_unsynchronised_scaling_draws_one_factor_per_axis() -> None:
    cfg = SpatialConfig(p_scaling=1.0, p_synchronize_scaling=0.0)
    p = spatial.make_params(cfg, 100, ndim=2, rotation_rad=(0, 0), generator=torch.Generator().manual_seed(0))
    assert (p.scales[:, 0] != p.scales[:, 1]).all()
