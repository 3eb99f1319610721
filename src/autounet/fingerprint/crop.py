"""Crop to the non-zero region (facts §2.1 step 2), vectorised.

The reference builds the mask "any channel != 0", fills its holes (``scipy.ndimage.binary_fill_holes``) and crops
to the mask's bounding box. Filling holes never changes the bounding box: a hole is a background region not
connected to the array border, while everything outside the bounding box is a background slab that touches the
border. So :func:`nonzero_bbox` skips the (expensive) hole filling; :func:`nonzero_mask` does it for callers that
need the filled mask itself (preprocessing marks voxels outside it with -1).
"""

from __future__ import annotations

import numpy as np

BBox = tuple[tuple[int, int], ...]


def any_nonzero(images: np.ndarray) -> np.ndarray:
    """Spatial mask of voxels where any channel of ``(c, *spatial)`` is non-zero."""
    return np.any(images != 0, axis=0)


def nonzero_mask(images: np.ndarray) -> np.ndarray:
    """The reference's non-zero mask: any channel non-zero, holes filled (face connectivity, whole volume)."""
    from scipy.ndimage import binary_fill_holes  # noqa: PLC0415 - slow import, only needed here

    return binary_fill_holes(any_nonzero(images))


def bbox_of(mask: np.ndarray) -> BBox:
    """Tight half-open bounding box ``((start, end), ...)`` of ``mask``; the whole array when it is empty."""
    box = []
    for axis in range(mask.ndim):
        hits = np.flatnonzero(np.any(mask, axis=tuple(a for a in range(mask.ndim) if a != axis)))
        if hits.size == 0:
            return tuple((0, s) for s in mask.shape)
        box.append((int(hits[0]), int(hits[-1]) + 1))
    return tuple(box)


def nonzero_bbox(images: np.ndarray) -> BBox:
    """Bounding box of the non-zero region of ``(c, *spatial)`` images (equal to the hole-filled mask's box)."""
    return bbox_of(any_nonzero(images))


def bbox_slices(bbox: BBox) -> tuple[slice, ...]:
    """Slices selecting ``bbox``."""
    return tuple(slice(a, b) for a, b in bbox)
