"""U-Net topology from spacing and patch size: pooling strides, conv kernels, divisibility (facts §3.6 step 2).

Pooling happens on every axis that is still at least ``2 * min_feature_map_size`` voxels and whose current spacing
is within a factor 2 of the finest valid axis; a lone poolable axis needs ``3 * min_feature_map_size`` voxels.
Kernels start at 1 and become 3 once an axis' spacing is within a factor 2 of the finest axis. The patch is then
padded up to a multiple of ``2 ** pools`` per axis. The arithmetic (floats, ``ceil``) follows the reference so that
fractional median shapes pad identically.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TypeAlias

import numpy as np

MIN_FEATURE_MAP_SIZE = 4

PerAxis: TypeAlias = Sequence[float] | np.ndarray
"""Per-axis values (a spacing, a shape): a sequence or a 1-D numpy array."""


@dataclass(frozen=True)
class Topology:
    """Network topology for one patch size.

    Attributes:
        pools_per_axis: number of stride-2 steps per axis.
        strides: per stage, the stride at the start of the stage (``strides[0]`` is all ones).
        kernel_sizes: per stage, the conv kernel size (the last entry is the all-3 bottleneck).
        patch_size: the patch padded to a multiple of ``divisor``.
        divisor: ``2 ** pools_per_axis``; every patch/shape fed to the network must be divisible by it.
    """

    pools_per_axis: tuple[int, ...]
    strides: tuple[tuple[int, ...], ...]
    kernel_sizes: tuple[tuple[int, ...], ...]
    patch_size: tuple[int, ...]
    divisor: tuple[int, ...]

    @property
    def n_stages(self) -> int:
        """Number of resolution stages (1 + number of pooling steps)."""
        return len(self.strides)


def pool_and_conv_props(spacing: PerAxis, patch_size: PerAxis, *,
                        min_feature_map_size: int = MIN_FEATURE_MAP_SIZE) -> Topology:
    """Strides, kernels and padded patch for ``patch_size`` at ``spacing`` (same rule as the reference)."""
    dim = len(spacing)
    current_spacing = [float(s) for s in spacing]
    current_size = [float(p) for p in patch_size]
    strides: list[tuple[int, ...]] = [(1,) * dim]
    kernels: list[tuple[int, ...]] = []
    pools = [0] * dim
    kernel = [1] * dim
    while True:
        valid = _poolable_axes(current_spacing, current_size, min_feature_map_size)
        if not valid:
            break
        for d in range(dim):
            if kernel[d] != 3 and current_spacing[d] / min(current_spacing) < 2:
                kernel[d] = 3
        stride = [1] * dim
        for axis in valid:
            stride[axis] = 2
            pools[axis] += 1
            current_spacing[axis] *= 2
            current_size[axis] = float(math.ceil(current_size[axis] / 2))
        strides.append(tuple(stride))
        kernels.append(tuple(kernel))
    kernels.append((3,) * dim)
    divisor = tuple(2 ** p for p in pools)
    return Topology(pools_per_axis=tuple(pools), strides=tuple(strides), kernel_sizes=tuple(kernels),
                    patch_size=pad_shape(patch_size, divisor), divisor=divisor)


def _poolable_axes(spacing: list[float], size: list[float], min_size: int) -> list[int]:
    """Axes to pool in the next step (empty: stop)."""
    valid = [i for i in range(len(spacing)) if size[i] >= 2 * min_size]
    if not valid:
        return []
    finest = min(spacing[i] for i in valid)
    valid = [i for i in valid if spacing[i] / finest < 2]
    if len(valid) == 1 and size[valid[0]] < 3 * min_size:
        return []
    return valid


def pad_shape(shape: PerAxis, divisor: Sequence[int]) -> tuple[int, ...]:
    """Round each entry of ``shape`` up to the next multiple of ``divisor`` (reference formula, float-safe)."""
    out = []
    for s, d in zip(shape, divisor, strict=True):
        padded = s + d - s % d
        if s % d == 0:
            padded -= d
        out.append(int(padded))
    return tuple(out)
