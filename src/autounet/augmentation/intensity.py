"""Intensity transforms on whole batches ``(B, C, *spatial)``: noise, blur, brightness, contrast, gamma.

Each family has a params record (small CPU tensors, one entry per sample/channel), ``make_*_params`` drawing
them from a ``torch.Generator``, and a deterministic ``apply_*`` that returns a new tensor and touches only the
selected samples. Semantics follow the reference (facts §5.4 steps 4-7, 9-10).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from autounet.augmentation import _sampling
from autounet.augmentation.config import BlurConfig, BrightnessConfig, ContrastConfig, GammaConfig, NoiseConfig

_EPS = 1e-7


def _spatial_dims(x: torch.Tensor) -> tuple[int, ...]:
    return tuple(range(2, x.ndim))


def _bc(t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Per-(sample, channel) values ``(n, C)`` shaped to broadcast over ``x (n, C, *spatial)``."""
    return t.to(device=x.device, dtype=x.dtype).view(*t.shape, *([1] * (x.ndim - 2)))


# ---- Gaussian noise ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class NoiseParams:
    """``apply (B,)``; ``sigma (B,)`` noise standard deviation (shared by channels); ``seed`` of the noise field."""

    apply: torch.Tensor
    sigma: torch.Tensor
    seed: int


def make_noise_params(config: NoiseConfig, batch_size: int, generator: torch.Generator) -> NoiseParams:
    """Draw which samples get noise and their standard deviation ``U(sigma)``."""
    return NoiseParams(apply=_sampling.bernoulli(config.p, (batch_size,), generator),
                       sigma=_sampling.uniform(config.sigma, (batch_size,), generator),
                       seed=_sampling.seed(generator))


def noise_field(params: NoiseParams, shape: tuple[int, ...], *, device: torch.device | str,
                dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Standard normal noise ``(n_selected, *shape[1:])`` for the selected samples, in batch order (from ``seed``)."""
    gen = torch.Generator(device=device).manual_seed(params.seed)
    n = int(params.apply.sum())
    return torch.randn((n, *shape[1:]), generator=gen, device=device, dtype=dtype)


def apply_noise(image: torch.Tensor, params: NoiseParams, *, field: torch.Tensor | None = None) -> torch.Tensor:
    """Add ``N(0, sigma^2)`` noise (independent per voxel and channel) to the selected samples.

    ``field`` (one standard-normal row per selected sample, see :func:`noise_field`) is drawn from the params'
    seed when not given.
    """
    idx = _sampling.selected(params.apply, image.device)
    if len(idx) == 0:
        return image
    if field is None:
        field = noise_field(params, tuple(image.shape), device=image.device, dtype=image.dtype)
    sub = image.index_select(0, idx)
    sigma = params.sigma[params.apply].to(device=image.device, dtype=image.dtype)
    return image.index_copy(0, idx, sub + field.to(image.dtype) * sigma.view(-1, *([1] * (image.ndim - 1))))


# ---- Gaussian blur -----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BlurParams:
    """``apply (B,)``; ``channels (B, C)`` bool; ``sigma (B, C, ndim)`` per channel and axis."""

    apply: torch.Tensor
    channels: torch.Tensor
    sigma: torch.Tensor


def make_blur_params(config: BlurConfig, batch_size: int, n_channels: int, ndim: int,
                     generator: torch.Generator) -> BlurParams:
    """Draw blurred samples, blurred channels (``p_per_channel``) and a sigma per channel and axis."""
    return BlurParams(apply=_sampling.bernoulli(config.p, (batch_size,), generator),
                      channels=_sampling.bernoulli(config.p_per_channel, (batch_size, n_channels), generator),
                      sigma=_sampling.uniform(config.sigma, (batch_size, n_channels, ndim), generator))


def kernel_size(sigma: torch.Tensor, *, truncate: float = 6.0) -> torch.Tensor:
    """Kernel length per sigma: the odd integer nearest to ``truncate * sigma + 0.5`` (the reference's rule).

    Python's ``round`` (half to even) gives ``r``; an even ``r`` moves to ``r + 1`` if the value lies at or above
    ``r``, else to ``r - 1``.
    """
    v = truncate * sigma.to(torch.float64) + 0.5
    r = torch.round(v)  # half to even, as Python's round
    even = torch.remainder(r, 2) == 0
    return torch.where(even, torch.where(v - r >= 0, r + 1, r - 1), r).to(torch.int64)


def gaussian_kernels(sigma: torch.Tensor) -> torch.Tensor:
    """Normalised 1D kernels ``(n, K)`` for sigmas ``(n,)``, each centred in the common length ``K`` (odd)."""
    sizes = kernel_size(sigma)
    k = int(sizes.max()) if len(sizes) else 1
    x = torch.arange(k, dtype=torch.float64) - (k - 1) / 2
    half = ((sizes - 1) / 2).to(torch.float64)
    pdf = torch.exp(-0.5 * (x[None] / sigma.to(torch.float64)[:, None]) ** 2)
    pdf = pdf * (x[None].abs() <= half[:, None])
    return pdf / pdf.sum(dim=1, keepdim=True)


def reflect_indices(n: int, pad: int, device: torch.device) -> torch.Tensor:
    """Indices ``-pad .. n+pad-1`` mirrored into ``0..n-1`` without repeating the edge (``reflect`` padding)."""
    i = torch.arange(-pad, n + pad, device=device)
    if n == 1:
        return torch.zeros_like(i)
    period = 2 * (n - 1)
    i = torch.remainder(i, period)
    return torch.where(i >= n, period - i, i)


def blur_axis(x: torch.Tensor, kernels: torch.Tensor, axis: int) -> torch.Tensor:
    """Convolve ``x (n, *spatial)`` along spatial ``axis`` with one kernel per row ``(n, K)``, reflect-padded."""
    k = kernels.shape[1]
    dim = axis + 1
    length = x.shape[dim]
    padded = x.index_select(dim, reflect_indices(length, k // 2, x.device))
    w = kernels.to(device=x.device, dtype=x.dtype)
    shape = [len(w)] + [1] * (x.ndim - 1)
    out = padded.narrow(dim, 0, length) * w[:, 0].view(shape)
    for j in range(1, k):
        out = out + padded.narrow(dim, j, length) * w[:, j].view(shape)
    return out


def apply_blur(image: torch.Tensor, params: BlurParams) -> torch.Tensor:
    """Separable Gaussian blur of the selected (sample, channel) pairs, each axis with its own sigma."""
    pairs = (params.apply[:, None] & params.channels).nonzero()
    if len(pairs) == 0:
        return image
    b, c = pairs[:, 0].to(image.device), pairs[:, 1].to(image.device)
    x = image[b, c]
    sigma = params.sigma[pairs[:, 0], pairs[:, 1]]
    for axis in range(image.ndim - 2):
        x = blur_axis(x, gaussian_kernels(sigma[:, axis]), axis)
    out = image.clone()
    out[b, c] = x
    return out


# ---- multiplicative brightness -----------------------------------------------------------------------------------

@dataclass(frozen=True)
class FactorParams:
    """``apply (B,)``; ``factor (B, C)`` one factor per sample and channel (brightness, contrast, gamma)."""

    apply: torch.Tensor
    factor: torch.Tensor


def make_factor_params(p: float, bounds: tuple[float, float], batch_size: int, n_channels: int,
                       generator: torch.Generator) -> FactorParams:
    """Draw applied samples and per-channel factors from the two-sided sampler on ``bounds``."""
    return FactorParams(apply=_sampling.bernoulli(p, (batch_size,), generator),
                        factor=_sampling.two_sided(bounds, (batch_size, n_channels), generator))


def make_brightness_params(config: BrightnessConfig, batch_size: int, n_channels: int,
                           generator: torch.Generator) -> FactorParams:
    """Brightness multipliers per channel."""
    return make_factor_params(config.p, config.multiplier, batch_size, n_channels, generator)


def apply_brightness(image: torch.Tensor, params: FactorParams) -> torch.Tensor:
    """Multiply each channel of the selected samples by its factor."""
    factor = torch.where(params.apply[:, None], params.factor, torch.ones_like(params.factor))
    if not bool(params.apply.any()):
        return image
    return image * _bc(factor, image)


# ---- contrast ----------------------------------------------------------------------------------------------------

def make_contrast_params(config: ContrastConfig, batch_size: int, n_channels: int,
                         generator: torch.Generator) -> FactorParams:
    """Contrast factors per channel."""
    return make_factor_params(config.p, config.factor, batch_size, n_channels, generator)


def apply_contrast(image: torch.Tensor, params: FactorParams, *, preserve_range: bool = True) -> torch.Tensor:
    """``x = (x - mean) * f + mean`` per channel, clamped to the channel's previous [min, max] if requested."""
    idx = _sampling.selected(params.apply, image.device)
    if len(idx) == 0:
        return image
    x = image.index_select(0, idx)
    dims = _spatial_dims(x)
    mean = x.mean(dim=dims, keepdim=True)
    y = (x - mean) * _bc(params.factor[params.apply], x) + mean
    if preserve_range:
        y = torch.clamp(y, x.amin(dim=dims, keepdim=True), x.amax(dim=dims, keepdim=True))
    return image.index_copy(0, idx, y)


# ---- gamma -------------------------------------------------------------------------------------------------------

def make_gamma_params(config: GammaConfig, batch_size: int, n_channels: int,
                      generator: torch.Generator) -> FactorParams:
    """Gamma values per channel."""
    return make_factor_params(config.p, config.gamma, batch_size, n_channels, generator)


def apply_gamma(image: torch.Tensor, params: FactorParams, *, invert: bool = False) -> torch.Tensor:
    """Gamma on the min-max-normalised channel, then restore the channel's mean and std (unbiased).

    With ``invert`` the channel is negated before and after, so the curve bends the other way.
    """
    idx = _sampling.selected(params.apply, image.device)
    if len(idx) == 0:
        return image
    x = image.index_select(0, idx)
    if invert:
        x = -x
    dims = _spatial_dims(x)
    std, mean = torch.std_mean(x, dim=dims, keepdim=True)
    lo = x.amin(dim=dims, keepdim=True)
    rng = x.amax(dim=dims, keepdim=True) - lo
    y = (x - lo).div_(rng.clamp_min(_EPS)).pow_(_bc(params.factor[params.apply], x)).mul_(rng).add_(lo)
    y_std, y_mean = torch.std_mean(y, dim=dims, keepdim=True)
    scale = std / y_std.clamp_min(_EPS)
    y = y.mul_(scale).add_(mean - y_mean * scale)
    if invert:
        y = y.neg_()
    return image.index_copy(0, idx, y)
