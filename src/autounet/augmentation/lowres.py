"""Simulated low resolution on whole batches (facts §5.4 step 8).

A selected channel is downsampled to ``round(n * zoom)`` voxels per axis with ``nearest-exact`` and upsampled
back to ``n`` with linear interpolation (align_corners=False), exactly as ``torch.nn.functional.interpolate``
would do it. Because every (sample, channel) has its own zoom, the two resamplings are fused per axis into one
gather of two neighbours and a linear blend, so the whole batch is processed at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from autounet.augmentation import _sampling
from autounet.augmentation.config import LowResConfig


@dataclass(frozen=True)
class LowResParams:
    """``apply (B,)``; ``channels (B, C)`` bool; ``zoom (B, C, ndim)`` (1 on ignored axes)."""

    apply: torch.Tensor
    channels: torch.Tensor
    zoom: torch.Tensor


def make_params(config: LowResConfig, batch_size: int, n_channels: int, ndim: int, generator: torch.Generator,
                *, ignore_axes: tuple[int, ...] = ()) -> LowResParams:
    """Draw samples, channels (``p_per_channel``) and one zoom per channel shared by its axes."""
    apply = _sampling.bernoulli(config.p, (batch_size,), generator)
    channels = _sampling.bernoulli(config.p_per_channel, (batch_size, n_channels), generator)
    zoom = _sampling.uniform(config.zoom, (batch_size, n_channels, 1), generator).expand(-1, -1, ndim).clone()
    if ignore_axes:
        zoom[:, :, list(ignore_axes)] = 1.0
    return LowResParams(apply=apply, channels=channels, zoom=zoom)


def axis_weights(n: int, zoom: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For zooms ``(k,)`` on an axis of length ``n``: source indices ``i0, i1 (k, n)`` and weights ``w1 (k, n)``.

    Output ``j`` is ``(1 - w1) * x[i0] + w1 * x[i1]``: the linear upsampling from ``m = round(n * zoom)`` of the
    nearest-exact downsampling to ``m``.
    """
    m = torch.clamp(torch.round(n * zoom.to(torch.float64)), min=1).to(torch.int64)  # (k,)
    j = torch.arange(n, dtype=torch.float64)[None]
    mf = m.to(torch.float64)[:, None]
    src = ((j + 0.5) * (mf / n) - 0.5).clamp_min(0.0)  # linear upsampling m -> n, align_corners=False
    lo = torch.floor(src).to(torch.int64)
    lo = torch.minimum(lo, m[:, None] - 1)
    hi = torch.minimum(lo + 1, m[:, None] - 1)
    w1 = src - lo.to(torch.float64)

    def down(t: torch.Tensor) -> torch.Tensor:  # nearest-exact downsampling n -> m: source of low-res voxel t
        return torch.minimum(torch.floor((t.to(torch.float64) + 0.5) * (n / mf)).to(torch.int64),
                             torch.tensor(n - 1))

    return down(lo), down(hi), w1


def _resample_axis(x: torch.Tensor, zoom: torch.Tensor, axis: int) -> torch.Tensor:
    """Apply the fused down/up resampling along spatial ``axis`` of ``x (k, *spatial)`` with zooms ``(k,)``."""
    dim = axis + 1
    n = x.shape[dim]
    i0, i1, w1 = axis_weights(n, zoom)
    shape = [x.shape[0]] + [1] * (x.ndim - 1)
    shape[dim] = n
    i0 = i0.to(x.device).view(shape).expand(x.shape)
    i1 = i1.to(x.device).view(shape).expand(x.shape)
    w = w1.to(device=x.device, dtype=x.dtype).view(shape)
    a, b = torch.gather(x, dim, i0), torch.gather(x, dim, i1)
    return a + (b - a) * w


def apply(image: torch.Tensor, params: LowResParams) -> torch.Tensor:
    """Simulate low resolution on the selected (sample, channel) pairs of ``image (B, C, *spatial)``."""
    pairs = (params.apply[:, None] & params.channels).nonzero()
    if len(pairs) == 0:
        return image
    b, c = pairs[:, 0].to(image.device), pairs[:, 1].to(image.device)
    x = image[b, c]
    zoom = params.zoom[pairs[:, 0], pairs[:, 1]]
    for axis in range(image.ndim - 2):
        if bool((zoom[:, axis] != 1).any()):
            x = _resample_axis(x, zoom[:, axis], axis)
    out = image.clone()
    out[b, c] = x
    return out
