"""Mirroring on whole batches: each allowed spatial axis is flipped per sample with probability ``p_per_axis``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from autounet.augmentation import _sampling
from autounet.augmentation.config import MirrorConfig


@dataclass(frozen=True)
class MirrorParams:
    """``flip (B, ndim)`` bool: flip sample ``b`` along spatial axis ``a`` (False for axes not allowed)."""

    flip: torch.Tensor


def make_params(config: MirrorConfig, batch_size: int, *, ndim: int, axes: Sequence[int],
                generator: torch.Generator) -> MirrorParams:
    """Draw the flips of every sample along every allowed axis."""
    draws = _sampling.bernoulli(config.p_per_axis, (batch_size, ndim), generator)
    allowed = torch.zeros(ndim, dtype=torch.bool)
    allowed[list(axes)] = True
    return MirrorParams(flip=draws & allowed)


def apply(x: torch.Tensor, params: MirrorParams) -> torch.Tensor:
    """Flip the selected samples of ``x (B, C, *spatial)`` (image or segmentation) along their axes.

    Samples are grouped by their flip pattern (at most ``2**ndim`` groups), so every voxel is copied once.
    """
    flip = params.flip
    if not bool(flip.any()):
        return x
    ndim = flip.shape[1]
    code = (flip.long() * (2 ** torch.arange(ndim))).sum(dim=1)
    out = x.clone()
    for pattern in code.unique().tolist():
        if pattern == 0:
            continue
        idx = _sampling.selected(code == pattern, x.device)
        axes = [a + 2 for a in range(ndim) if (pattern >> a) & 1]
        out[idx] = x.index_select(0, idx).flip(axes)
    return out
