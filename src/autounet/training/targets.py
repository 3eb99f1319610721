"""Batch post-processing after augmentation, on the device (reference pipeline steps 12–16, §5.4).

Masking of ``use_mask_for_norm`` channels outside the non-zero mask, ``-1`` → background, the cascade's one-hot
previous-stage channels, region targets, and the deep-supervision target pyramid. All functions act on whole
batches ``(B, C, *spatial)``; none loops over samples.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import torch.nn.functional as F


def deep_supervision_scales(strides: Sequence[Sequence[int]]) -> list[tuple[float, ...]]:
    """``1 / cumprod(strides)`` per axis, without the last (bottleneck) entry: ``[(1,1,1), (.5,.5,.5), ...]``."""
    cum = np.cumprod(np.vstack([np.asarray(s, dtype=float) for s in strides]), axis=0)
    return [tuple(float(x) for x in 1.0 / row) for row in cum[:-1]]


def mask_outside(data: torch.Tensor, seg: torch.Tensor, channels: Sequence[int]) -> torch.Tensor:
    """Set ``data`` of the given channels to 0 where segmentation channel 0 is negative (outside mask / padding)."""
    if not channels:
        return data
    outside = (seg[:, :1] < 0)
    idx = torch.as_tensor(list(channels), device=data.device)
    data = data.clone()
    data[:, idx] = data[:, idx].masked_fill(outside.expand(-1, len(channels), *outside.shape[2:]), 0)
    return data


def remove_negative(seg: torch.Tensor) -> torch.Tensor:
    """Every ``-1`` becomes background (0): outside-mask and padded voxels train as background."""
    return seg.clamp_min(0)


def cascade_inputs(data: torch.Tensor, seg: torch.Tensor, foreground_labels: Sequence[int]) -> tuple[torch.Tensor,
                                                                                                     torch.Tensor]:
    """Move segmentation channel 1 (previous stage) to the data as one-hot channels over the foreground labels."""
    prev = seg[:, 1]
    labels = torch.as_tensor(list(foreground_labels), device=seg.device, dtype=prev.dtype)
    onehot = (prev.unsqueeze(1) == labels.view(1, -1, *([1] * (prev.ndim - 1)))).to(data.dtype)
    return torch.cat([data, onehot], dim=1), seg[:, :1]


def region_targets(seg: torch.Tensor, regions: Sequence[Sequence[int]], ignore_label: int | None) -> torch.Tensor:
    """One boolean channel per region (voxel label in the region); with an ignore label an extra last channel."""
    labels = seg[:, 0]
    channels = [torch.isin(labels, torch.as_tensor(list(r), device=seg.device, dtype=labels.dtype))
                for r in regions]
    if ignore_label is not None:
        channels.append(labels == ignore_label)
    return torch.stack(channels, dim=1).to(torch.int16)


def downsample_targets(target: torch.Tensor, scales: Sequence[Sequence[float]]) -> list[torch.Tensor]:
    """The target at every deep-supervision scale (``nearest-exact`` to ``round(shape * scale)``)."""
    out = []
    spatial = target.shape[2:]
    for scale in scales:
        if all(s == 1 for s in scale):
            out.append(target)
            continue
        size = [int(round(n * s)) for n, s in zip(spatial, scale)]
        down = F.interpolate(target.float(), size=size, mode="nearest-exact")
        out.append(down.to(target.dtype))
    return out
