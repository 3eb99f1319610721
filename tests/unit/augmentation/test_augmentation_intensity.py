"""Noise, blur, brightness, contrast and gamma: fixed-parameter equivalence with NumPy/SciPy, draw statistics."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage

from autounet.augmentation import _sampling, intensity
from autounet.augmentation.config import BlurConfig, GammaConfig, NoiseConfig

B, C = 3, 2


@pytest.fixture
def image(rng: np.random.Generator) -> torch.Tensor:
    return torch.from_numpy(rng.normal(2.0, 3.0, size=(B, C, 7, 9, 8)).astype(np.float32))


def factor_params(apply: list[bool], factor: np.ndarray) -> intensity.FactorParams:
    return intensity.FactorParams(apply=torch.tensor(apply), factor=torch.from_numpy(factor))


# ---- noise -------------------------------------------------------------------------------------------------------

def test_noise_has_the_drawn_standard_deviation_and_spares_other_samples() -> None:
    img = torch.zeros(3, 2, 40, 40, 40)
    p = intensity.NoiseParams(apply=torch.tensor([True, False, True]),
                              sigma=torch.tensor([0.05, 0.2, 0.1], dtype=torch.float64), seed=7)
    out = intensity.apply_noise(img, p)
    assert torch.equal(out[1], img[1])
    for b, sigma in ((0, 0.05), (2, 0.1)):
        assert abs(out[b].std().item() - sigma) < 0.02 * sigma
        assert abs(out[b].mean().item()) < 0.01 * sigma
    # channels get independent noise fields with the shared sigma
    assert abs(np.corrcoef(out[0, 0].flatten(), out[0, 1].flatten())[0, 1]) < 0.02
    assert torch.equal(intensity.apply_noise(img, p), out)  # the seed makes apply deterministic


def test_zero_sigma_noise_is_identity(image: torch.Tensor) -> None:
    p = intensity.NoiseParams(apply=torch.ones(B, dtype=torch.bool), sigma=torch.zeros(B, dtype=torch.float64),
                              seed=1)
    assert torch.equal(intensity.apply_noise(image, p), image)


def test_noise_draws() -> None:
    p = intensity.make_noise_params(NoiseConfig(), 40000, torch.Generator().manual_seed(0))
    assert abs(p.apply.double().mean().item() - 0.1) < 5 * math.sqrt(0.09 / 40000)
    assert p.sigma.min() >= 0 and p.sigma.max() <= 0.1 and abs(p.sigma.mean().item() - 0.05) < 0.002


# ---- blur --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("sigma", "size"), [(0.5, 3), (0.6, 5), (0.75, 5), (0.9, 5), (1.0, 7), (2.0, 13),
                                             (0.25, 3)])
def test_kernel_size_is_the_odd_number_nearest_to_6_sigma(sigma: float, size: int) -> None:
    # 6*0.5+0.5 = 3.5 -> round 4 (half to even), even and 3.5 < 4 -> 3; 6*0.6+0.5 = 4.1 -> 4 -> 5;
    # 6*1+0.5 = 6.5 -> round 6, 6.5 >= 6 -> 7; 6*0.25+0.5 = 2.0 -> 2, 2.0 >= 2 -> 3
    assert intensity.kernel_size(torch.tensor([sigma], dtype=torch.float64)).item() == size


def test_blur_matches_scipy_gaussian_filter_with_the_same_support(image: torch.Tensor) -> None:
    sig = np.array([[[0.5, 0.8, 1.0], [0.9, 0.6, 0.7]]] * B)
    channels = torch.tensor([[True, False], [False, False], [True, True]])
    p = intensity.BlurParams(apply=torch.tensor([True, True, True]), channels=channels,
                             sigma=torch.from_numpy(sig))
    out = intensity.apply_blur(image, p).numpy()
    x = image.numpy().astype(np.float64)
    for b in range(B):
        for c in range(C):
            expected = x[b, c]
            if channels[b, c]:
                for axis in range(3):
                    radius = int(intensity.kernel_size(torch.tensor([sig[b, c, axis]])).item()) // 2
                    expected = ndimage.gaussian_filter1d(expected, sig[b, c, axis], axis=axis, mode="mirror",
                                                         radius=radius)
            np.testing.assert_allclose(out[b, c], expected, atol=1e-5)


def test_reflect_indices_work_for_short_axes() -> None:
    idx = intensity.reflect_indices(3, 4, torch.device("cpu")).tolist()
    assert idx == [0, 1, 2, 1, 0, 1, 2, 1, 0, 1, 2]  # ... 2 1 | 0 1 2 | 1 0 ...
    assert intensity.reflect_indices(1, 2, torch.device("cpu")).tolist() == [0] * 5


def test_blur_draws() -> None:
    p = intensity.make_blur_params(BlurConfig(), 20000, 3, 3, torch.Generator().manual_seed(1))
    assert abs(p.apply.double().mean().item() - 0.2) < 0.015
    assert abs(p.channels.double().mean().item() - 0.5) < 0.01
    assert p.sigma.min() >= 0.5 and p.sigma.max() <= 1.0
    assert (p.sigma[:, 0, 0] != p.sigma[:, 0, 1]).all()  # per axis
    assert (p.sigma[:, 0, 0] != p.sigma[:, 1, 0]).all()  # per channel


# ---- brightness, contrast ----------------------------------------------------------------------------------------

def test_brightness_multiplies_channels_of_selected_samples(image: torch.Tensor) -> None:
    f = np.array([[0.8, 1.2], [0.5, 0.5], [1.1, 0.9]])
    out = intensity.apply_brightness(image, factor_params([True, False, True], f))
    x = image.numpy()
    np.testing.assert_allclose(out.numpy()[0], x[0] * f[0][:, None, None, None], rtol=1e-6)
    np.testing.assert_array_equal(out.numpy()[1], x[1])
    np.testing.assert_allclose(out.numpy()[2], x[2] * f[2][:, None, None, None], rtol=1e-6)


def test_contrast_matches_numpy(image: torch.Tensor) -> None:
    f = np.array([[0.8, 1.25], [1.0, 1.0], [1.2, 0.75]])
    out = intensity.apply_contrast(image, factor_params([True, True, False], f)).numpy()
    x = image.numpy().astype(np.float64)
    for b in (0, 1):
        for c in range(C):
            ch = x[b, c]
            expected = np.clip((ch - ch.mean()) * f[b, c] + ch.mean(), ch.min(), ch.max())
            np.testing.assert_allclose(out[b, c], expected, atol=1e-5)
    np.testing.assert_array_equal(out[2], x[2].astype(np.float32))
    np.testing.assert_allclose(out[1], x[1], atol=1e-5)  # factor 1 is the identity


def test_two_sided_sampler_is_balanced_around_one() -> None:
    g = torch.Generator().manual_seed(5)
    v = _sampling.two_sided((0.75, 1.25), (100000,), g)
    assert v.min() >= 0.75 and v.max() <= 1.25
    assert abs((v < 1).double().mean().item() - 0.5) < 0.01
    below, above = v[v < 1], v[v >= 1]
    assert abs(below.mean().item() - 0.875) < 0.003 and abs(above.mean().item() - 1.125) < 0.003
    # an asymmetric range still puts half the draws below one
    w = _sampling.two_sided((0.7, 1.5), (100000,), g)
    assert abs((w < 1).double().mean().item() - 0.5) < 0.01 and w.max() <= 1.5 and w.min() >= 0.7


# ---- gamma -------------------------------------------------------------------------------------------------------

def numpy_gamma(x: np.ndarray, gamma: float, *, invert: bool) -> np.ndarray:
    x = -x if invert else x.copy()
    mean, std = x.mean(), x.std(ddof=1)
    lo, hi = x.min(), x.max()
    y = ((x - lo) / max(hi - lo, 1e-7)) ** gamma * (hi - lo) + lo
    y = (y - y.mean()) * (std / max(y.std(ddof=1), 1e-7)) + mean
    return -y if invert else y


@pytest.mark.parametrize("invert", [False, True])
def test_gamma_matches_numpy(image: torch.Tensor, invert: bool) -> None:
    g = np.array([[0.7, 1.5], [1.2, 0.9], [1.0, 1.0]])
    out = intensity.apply_gamma(image, factor_params([True, False, True], g), invert=invert).numpy()
    x = image.numpy().astype(np.float64)
    for c in range(C):
        np.testing.assert_allclose(out[0, c], numpy_gamma(x[0, c], g[0, c], invert=invert), atol=1e-4)
        np.testing.assert_allclose(out[2, c], x[2, c], atol=1e-4)  # gamma 1 is the identity
    np.testing.assert_array_equal(out[1], x[1].astype(np.float32))


def test_gamma_keeps_mean_and_std(image: torch.Tensor) -> None:
    g = np.full((B, C), 1.4)
    out = intensity.apply_gamma(image, factor_params([True] * B, g))
    dims = (2, 3, 4)
    torch.testing.assert_close(out.mean(dim=dims), image.mean(dim=dims), atol=1e-4, rtol=0)
    torch.testing.assert_close(out.std(dim=dims), image.std(dim=dims), atol=1e-4, rtol=1e-4)


def test_gamma_draws_are_per_channel() -> None:
    p = intensity.make_gamma_params(GammaConfig(p=0.3), 20000, 2, torch.Generator().manual_seed(2))
    assert abs(p.apply.double().mean().item() - 0.3) < 0.02
    assert p.factor.min() >= 0.7 and p.factor.max() <= 1.5
    assert (p.factor[:, 0] != p.factor[:, 1]).all()
