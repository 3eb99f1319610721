"""Full-resolution target spacing (median + anisotropy rule), transposition and resampled median shape.

Facts §3.2–§3.4. The arithmetic mirrors the reference's numpy calls (``np.percentile`` for the target, ``np.median``
for the median shape, Python ``round`` for resampled shapes) so that results are bit-identical.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from autounet.planning.topology import PerAxis

ANISO_THRESHOLD = 3.0
ANISO_PERCENTILE = 10.0
ANISO_EPSILON = 1e-5


@dataclass(frozen=True)
class SpacingDecision:
    """How the full-resolution target spacing was chosen (untransposed axis order).

    Attributes:
        target: the chosen target spacing.
        median_spacing: per-axis median (50th percentile) of the case spacings.
        median_shape: per-axis median of the cropped shapes (native voxels).
        worst_axis: the axis with the largest median spacing.
        anisotropic_spacing: median spacing of ``worst_axis`` > 3 x the largest other median spacing.
        anisotropic_voxels: median size of ``worst_axis`` x 3 < the smallest other median size.
        corrected_value: the 10th-percentile spacing used for ``worst_axis`` when both conditions hold, else None.
        overridden: the target was given by the user (``--target-spacing``); no rule applied.
    """

    target: tuple[float, ...]
    median_spacing: tuple[float, ...]
    median_shape: tuple[float, ...]
    worst_axis: int
    anisotropic_spacing: bool
    anisotropic_voxels: bool
    corrected_value: float | None
    overridden: bool


def fullres_target_spacing(spacings: np.ndarray, shapes_after_crop: np.ndarray, *,
                           override: Sequence[float] | None = None) -> SpacingDecision:
    """The 3d_fullres target spacing: the median, with the anisotropic axis set to its 10th percentile.

    Args:
        spacings: ``(n_cases, 3)`` case spacings.
        shapes_after_crop: ``(n_cases, 3)`` cropped shapes.
        override: a user-given target spacing, used verbatim.
    """
    spacings = np.asarray(spacings, dtype=np.float64)
    sizes = np.asarray(shapes_after_crop, dtype=np.float64)
    median = np.percentile(spacings, 50, 0)
    median_size = np.percentile(sizes, 50, 0)
    worst = int(np.argmax(median))
    others = [i for i in range(len(median)) if i != worst]
    other_spacings = [median[i] for i in others]
    other_sizes = [median_size[i] for i in others]
    aniso_spacing = bool(median[worst] > ANISO_THRESHOLD * max(other_spacings))
    aniso_voxels = bool(median_size[worst] * ANISO_THRESHOLD < min(other_sizes))

    def decision(target: tuple[float, ...], corrected: float | None, overridden: bool) -> SpacingDecision:
        return SpacingDecision(target=target, median_spacing=_floats(median), median_shape=_floats(median_size),
                               worst_axis=worst, anisotropic_spacing=aniso_spacing, anisotropic_voxels=aniso_voxels,
                               corrected_value=corrected, overridden=overridden)

    if override is not None:
        return decision(tuple(float(x) for x in override), None, True)
    target = median.copy()
    corrected = None
    if aniso_spacing and aniso_voxels:
        value = np.percentile(spacings[:, worst], ANISO_PERCENTILE)
        if value < max(other_spacings):
            value = max(max(other_spacings), value) + ANISO_EPSILON
        target[worst] = value
        corrected = float(value)
    return decision(_floats(target), corrected, False)


def transpose_for(target_spacing: Sequence[float]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``(transpose_forward, transpose_backward)``: the largest-spacing axis first, the others in order."""
    first = int(np.argmax(np.asarray(target_spacing)))
    forward = (first, *[i for i in range(len(target_spacing)) if i != first])
    backward = tuple(forward.index(i) for i in range(len(forward)))
    return forward, backward


def resampled_shape(shape: Sequence[float], spacing: Sequence[float], target: PerAxis) -> tuple[int, ...]:
    """Shape after resampling from ``spacing`` to ``target``: ``round(spacing / target * shape)`` per axis."""
    return tuple(int(round(s / t * n)) for n, s, t in zip(shape, spacing, target, strict=True))


def median_resampled_shape(spacings: np.ndarray, shapes_after_crop: np.ndarray,
                           target: PerAxis) -> np.ndarray:
    """Per-axis median over cases of the resampled shapes (float64, untransposed)."""
    shapes = [resampled_shape(n, s, target) for s, n in zip(np.asarray(spacings).tolist(),
                                                             np.asarray(shapes_after_crop).tolist(), strict=True)]
    return np.median(np.asarray(shapes), 0)


def _floats(values: np.ndarray) -> tuple[float, ...]:
    return tuple(float(v) for v in values)
