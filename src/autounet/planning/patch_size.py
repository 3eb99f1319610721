"""Initial patch size and the patch-shrinking loop against the VRAM budget (facts §3.6 steps 1 and 7)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from autounet.errors import ConfigError
from autounet.planning.topology import PerAxis, Topology, pool_and_conv_props

INITIAL_EDGE_3D = 256
INITIAL_EDGE_2D = 2048


@dataclass(frozen=True)
class ShrinkStep:
    """One evaluated patch size: the padded patch, its VRAM proxy, and the axis reduced to reach it."""

    patch_size: tuple[int, ...]
    estimate: int
    reduced_axis: int | None


def initial_patch_size(spacing: PerAxis, median_shape: PerAxis) -> tuple[float, ...]:
    """A box with the aspect ratio of ``1 / spacing`` and the volume of 256³ (3D) or 2048² (2D), clipped per axis
    to the median shape (which may be fractional; the reference keeps the fraction until padding)."""
    inverse = 1 / np.asarray(spacing, dtype=np.float64)
    if len(spacing) == 3:
        scaled = inverse * (INITIAL_EDGE_3D ** 3 / np.prod(inverse)) ** (1 / 3)
    elif len(spacing) == 2:
        scaled = inverse * (INITIAL_EDGE_2D ** 2 / np.prod(inverse)) ** (1 / 2)
    else:
        msg = f"spacing must have 2 or 3 entries, got {tuple(spacing)}"
        raise ConfigError(msg)
    rounded = [round(float(v)) for v in scaled]
    return tuple(float(min(p, float(m))) for p, m in zip(rounded, median_shape[:len(spacing)], strict=True))


def exceeds_budget(estimate: float, budget: float, *, ref_batch_size: int, batch_corrected: bool) -> bool:
    """The loop condition: ``estimate / ref_bs * 2 > budget`` (default planner) or ``estimate > budget`` (ResEnc)."""
    if batch_corrected:
        return estimate / ref_batch_size * 2 > budget
    return estimate > budget


def axis_to_reduce(patch_size: Sequence[int], median_shape: PerAxis) -> int:
    """The axis with the largest ``patch / median`` ratio; ties go to the highest axis index."""
    ratios = [p / m for p, m in zip(patch_size, median_shape, strict=False)]
    return int(np.argsort(ratios, kind="stable")[-1])


def reduce_patch(spacing: PerAxis, patch_size: Sequence[int], divisor: Sequence[int], axis: int) -> list[int]:
    """Shrink ``axis`` by the divisor valid for the already-reduced patch, so that no valid size is skipped."""
    trial = list(patch_size)
    trial[axis] -= divisor[axis]
    new_divisor = pool_and_conv_props(spacing, trial).divisor
    reduced = list(patch_size)
    reduced[axis] -= new_divisor[axis]
    return reduced


def shrink_to_budget(spacing: PerAxis, median_shape: PerAxis, topology: Topology,
                     estimate: Callable[[Topology], int], *, budget: float, ref_batch_size: int,
                     batch_corrected: bool) -> list[tuple[Topology, ShrinkStep]]:
    """Shrink the patch until the VRAM proxy fits ``budget``; returns every evaluated (topology, step), last = final.

    Raises:
        ConfigError: the patch would shrink below one voxel (the budget cannot be met).
    """
    current = topology
    history = [(current, ShrinkStep(current.patch_size, estimate(current), None))]
    while exceeds_budget(history[-1][1].estimate, budget, ref_batch_size=ref_batch_size,
                         batch_corrected=batch_corrected):
        axis = axis_to_reduce(current.patch_size, median_shape[:len(spacing)])
        reduced = reduce_patch(spacing, current.patch_size, current.divisor, axis)
        if reduced[axis] < 1:
            msg = (f"the GPU memory budget ({budget:.4g} feature-map elements) cannot be met even with a patch of "
                   f"{tuple(current.patch_size)}; raise --gpu-memory.")
            raise ConfigError(msg)
        current = pool_and_conv_props(spacing, reduced)
        history.append((current, ShrinkStep(current.patch_size, estimate(current), axis)))
    return history
