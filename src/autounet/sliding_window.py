"""Pure sliding-window helpers shared by inference and anything else that tiles a volume.

Tile positions and the Gaussian importance map follow the reference exactly (facts §7.2): per axis
``n = ceil((I - P) / (P * step)) + 1`` tiles at ``round(k * (I - P) / (n - 1))``, so the first tile is flush with the
start and the last with the end; the importance map is a unit impulse at ``P // 2`` blurred with ``sigma = P / 8``,
scaled to a peak of 10, with exact zeros replaced by the smallest non-zero value. We keep it in float32 (the
reference casts it to float16, see §12.6).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
from scipy.ndimage import gaussian_filter

from autounet.errors import UsageError

GAUSSIAN_SIGMA_SCALE = 1.0 / 8
GAUSSIAN_PEAK = 10.0


def compute_steps(image_size: Sequence[int], patch_size: Sequence[int], step: float) -> list[list[int]]:
    """Tile start positions per axis for an image at least as large as the patch (pad first otherwise)."""
    if not 0 < step <= 1:
        msg = f"The tile step must be in (0, 1], got {step}."
        raise UsageError(msg)
    if len(image_size) != len(patch_size):
        msg = f"Image size {tuple(image_size)} and patch size {tuple(patch_size)} differ in dimensionality."
        raise UsageError(msg)
    steps = []
    for size, patch in zip(image_size, patch_size, strict=True):
        if size < patch:
            msg = f"Image size {tuple(image_size)} is smaller than the patch {tuple(patch_size)}; pad it first."
            raise UsageError(msg)
        n = math.ceil((size - patch) / (patch * step)) + 1
        if n == 1:
            steps.append([0])
            continue
        stride = (size - patch) / (n - 1)
        steps.append([int(np.round(stride * k)) for k in range(n)])
    return steps


def gaussian_importance_map(patch_size: Sequence[int]) -> np.ndarray:
    """The float32 Gaussian weight of one tile (peak 10, no exact zeros). Cached per patch size; read-only."""
    return _gaussian(tuple(int(p) for p in patch_size))


@lru_cache(maxsize=4)
def _gaussian(patch_size: tuple[int, ...]) -> np.ndarray:
    impulse = np.zeros(patch_size, dtype=np.float64)
    impulse[tuple(p // 2 for p in patch_size)] = 1.0
    sigmas = [p * GAUSSIAN_SIGMA_SCALE for p in patch_size]
    weights = gaussian_filter(impulse, sigmas, order=0, mode="constant", cval=0.0)
    weights = weights / weights.max() * GAUSSIAN_PEAK
    positive = weights[weights > 0]
    weights[weights == 0] = positive.min()
    out = weights.astype(np.float32)
    out.setflags(write=False)
    return out


def pad_amounts(image_size: Sequence[int], patch_size: Sequence[int]) -> list[tuple[int, int]]:
    """Centred padding ``(before, after)`` per axis bringing the image up to the patch (odd extra voxel at the end)."""
    out = []
    for size, patch in zip(image_size, patch_size, strict=True):
        missing = max(0, int(patch) - int(size))
        out.append((missing // 2, missing - missing // 2))
    return out
