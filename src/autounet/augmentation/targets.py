"""Target preparation after augmentation: masking, outside-label removal, regions and deep supervision.

These steps are deterministic (no parameters) and run in both the training and the validation pipeline
(facts §5.4 steps 12, 13, 15, 16).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F

Scale = tuple[float, ...]


def deep_supervision_scales(strides: Sequence[Sequence[int]]) -> tuple[Scale, ...]:
    """Per-output target scales: ``1 / cumprod(strides)`` per axis with the last (bottleneck) entry removed.

    ``strides`` has one entry per network stage (the first is all ones), so a 6-stage network with isotropic
    pooling gives ``(1, 1, 1), (1/2, ...), ..., (1/16, ...)``: one scale per decoder output.
    """
    arr = np.asarray([list(s) for s in strides], dtype=np.float64)
    if arr.ndim != 2 or len(arr) < 1:
        msg = f"strides must be a non-empty list of per-axis strides, got {strides!r}"
        raise ValueError(msg)
    scales = 1.0 / np.cumprod(arr, axis=0)
    return tuple(tuple(float(v) for v in row) for row in scales[:-1])


def downsample_target(seg: torch.Tensor, scale: Scale) -> torch.Tensor:
    """``nearest-exact`` downsampling of ``seg (B, C, *spatial)`` to ``round(shape * scale)``; dtype kept."""
    if all(s == 1 for s in scale):
        return seg
    size = [int(round(n * s)) for n, s in zip(seg.shape[2:], scale)]
    return F.interpolate(seg.float(), size=size, mode="nearest-exact").to(seg.dtype)


def deep_supervision_targets(seg: torch.Tensor, scales: Sequence[Scale]) -> list[torch.Tensor]:
    """One target per scale, highest resolution first."""
    if len(scales) and any(len(s) != seg.ndim - 2 for s in scales):
        msg = f"deep-supervision scales {list(scales)} do not match a {seg.ndim - 2}D target"
        raise ValueError(msg)
    return [downsample_target(seg, s) for s in scales]


def to_regions(seg: torch.Tensor, regions: Sequence[Sequence[int] | int], *,
               ignore_label: int | None = None) -> torch.Tensor:
    """Label map ``(B, 1, *spatial)`` -> boolean region masks ``(B, R, *spatial)`` (label in the region's set).

    With an ``ignore_label`` one extra last channel marks the ignored voxels.
    """
    label_sets = [[r] if isinstance(r, int) else list(r) for r in regions]
    if ignore_label is not None:
        label_sets.append([ignore_label])
    labels = seg[:, 0]
    masks = [torch.isin(labels, torch.tensor(s, dtype=labels.dtype, device=labels.device)) for s in label_sets]
    return torch.stack(masks, dim=1)


def remove_label(seg: torch.Tensor, *, value: int = -1, set_to: int = 0) -> torch.Tensor:
    """Replace ``value`` (outside the mask or the patch) by ``set_to`` in every segmentation channel."""
    return torch.where(seg == value, torch.full_like(seg, set_to), seg)


def mask_image(image: torch.Tensor, seg: torch.Tensor, channels: Sequence[int]) -> torch.Tensor:
    """Set ``image`` channels ``channels`` to 0 where segmentation channel 0 is negative (outside the mask)."""
    if not channels:
        return image
    outside = (seg[:, :1] < 0)
    select = torch.zeros(image.shape[1], dtype=torch.bool, device=image.device)
    select[list(channels)] = True
    kill = outside & select.view(1, -1, *([1] * (image.ndim - 2)))
    return image.masked_fill(kill, 0.0)
