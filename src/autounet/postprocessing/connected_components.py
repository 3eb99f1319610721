"""Connected-component post-processing: keep only the largest component of a label, region or all foreground.

The operation matches the reference (§9.1): the mask is the union of the given labels/regions; components use
full connectivity (26 neighbours in 3D, 8 in 2D; a ``(1, H, W)`` array is 2D in effect); every component tied
for the largest size is kept; voxels of the mask outside the kept components become background (0). Labelling
uses cc3d (fast, C++), sizes come from one ``bincount``.
"""

from __future__ import annotations

from collections.abc import Sequence

import cc3d
import numpy as np

from autounet.schemas.results import LabelOrRegion, PostprocessingStep


def union_mask(seg: np.ndarray, labels_or_regions: Sequence[LabelOrRegion]) -> np.ndarray:
    """Boolean mask of the voxels whose label belongs to any of ``labels_or_regions``."""
    values: set[int] = set()
    for item in labels_or_regions:
        values.update(int(v) for v in (item if isinstance(item, (tuple, list)) else (item,)))
    return np.isin(seg, np.fromiter(values, dtype=np.int64, count=len(values)))


def largest_components(mask: np.ndarray) -> np.ndarray:
    """The voxels of ``mask`` in its largest connected component(s) (ties: all of the largest are kept)."""
    if mask.ndim not in (2, 3):
        msg = f"Connected components need a 2D or 3D mask, got shape {mask.shape}."
        raise ValueError(msg)
    if not mask.any():
        return np.zeros_like(mask, dtype=bool)
    components = cc3d.connected_components(mask, connectivity=26 if mask.ndim == 3 else 8)
    sizes = np.bincount(components.reshape(-1))
    sizes[0] = 0
    keep = sizes == sizes.max()
    keep[0] = False
    return keep[components]


def keep_largest_component(seg: np.ndarray, labels_or_regions: Sequence[LabelOrRegion]) -> np.ndarray:
    """A copy of ``seg`` where the union of ``labels_or_regions`` is reduced to its largest component(s)."""
    mask = union_mask(seg, labels_or_regions)
    out = seg.copy()
    out[mask & ~largest_components(mask)] = 0
    return out


def apply_steps(seg: np.ndarray, steps: Sequence[PostprocessingStep]) -> np.ndarray:
    """Apply post-processing steps in order (the input is not modified)."""
    out = seg
    for step in steps:
        out = keep_largest_component(out, step.labels_or_regions)
    return out if steps else seg.copy()
