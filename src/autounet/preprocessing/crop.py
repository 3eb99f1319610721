"""Cropping to the non-zero region (reference ``crop_to_nonzero``).

The non-zero mask is the union over channels of ``image != 0`` with enclosed holes filled (6-connectivity in 3D,
as ``scipy.ndimage.binary_fill_holes``). The crop is the mask's bounding box (half-open ``[start, end)`` per axis;
an empty mask keeps the whole image). In the cropped segmentation, background voxels (label 0) outside the mask
become -1; without a segmentation, one is made: 0 inside the mask, -1 outside.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

OUTSIDE_LABEL = -1
BBox = list[list[int]]


@dataclass(frozen=True)
class CropResult:
    """Cropped image ``(c, ...)``, cropped segmentation ``(1, ...)`` with -1 outside the mask, and the bbox."""

    data: np.ndarray
    seg: np.ndarray
    bbox: BBox


def _label(background: np.ndarray) -> tuple[np.ndarray, int]:
    """Connected components with the smallest label dtype that holds them (2 bytes per voxel when possible)."""
    try:
        return ndimage.label(background, output=np.uint16)
    except RuntimeError:  # more than 65535 components
        return ndimage.label(background)


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """Fill background regions not connected (face connectivity) to the array border.

    Equivalent to ``scipy.ndimage.binary_fill_holes`` with its default structure, but one labelling pass instead
    of an iterated dilation, and free when the mask has no background at all.
    """
    background = ~mask
    if not background.any():
        return mask.copy()
    labels, n = _label(background)
    del background
    if n == 0:
        return mask.copy()
    border = np.zeros(n + 1, dtype=bool)
    for axis in range(labels.ndim):
        for index in (0, labels.shape[axis] - 1):
            border[np.unique(np.take(labels, index, axis=axis))] = True
    border[0] = False  # label 0 is the mask itself, which stays True
    return ~border[labels]


def _union_nonzero(data: np.ndarray) -> np.ndarray:
    mask = data[0] != 0
    for c in range(1, data.shape[0]):
        mask |= data[c] != 0
    return mask


def _mask_and_bbox(data: np.ndarray) -> tuple[np.ndarray, BBox]:
    """The filled non-zero mask inside its bounding box, and the box.

    Filling holes commutes with cropping to the box: everything outside the box is background connected to the
    array border, so a background region inside the box reaches the border exactly when it reaches a box face.
    Labelling only the box saves memory when much of the image is zero.
    """
    raw = _union_nonzero(data)
    bbox = bbox_of_mask(raw)
    inside = fill_holes(raw[bbox_to_slices(bbox)])
    return inside, bbox


def nonzero_mask(data: np.ndarray) -> np.ndarray:
    """Union over channels of ``data != 0``, holes filled. ``data`` is channel-first."""
    inside, bbox = _mask_and_bbox(data)
    mask = np.zeros(data.shape[1:], dtype=bool)
    mask[bbox_to_slices(bbox)] = inside
    return mask


def bbox_of_mask(mask: np.ndarray) -> BBox:
    """Half-open bounding box of the True voxels; an empty mask gives the whole array (as the reference)."""
    box = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        hits = np.flatnonzero(mask.any(axis=other))
        box.append([int(hits[0]), int(hits[-1]) + 1] if hits.size else [0, int(mask.shape[axis])])
    return box


def bbox_to_slices(bbox: BBox) -> tuple[slice, ...]:
    """Slices of a half-open bounding box."""
    return tuple(slice(lo, hi) for lo, hi in bbox)


def crop_to_nonzero(data: np.ndarray, seg: np.ndarray | None = None) -> CropResult:
    """Crop channel-first ``data`` (and ``seg``, shape ``(1, ...)``) to the non-zero bounding box.

    The inputs are not modified; the returned segmentation is a new array (int16 for unsigned or float input).
    """
    inside, bbox = _mask_and_bbox(data)
    slices = bbox_to_slices(bbox)
    inside = inside[None]
    cropped = data[(slice(None), *slices)]
    if seg is None:
        out_seg = np.where(inside, np.int8(0), np.int8(OUTSIDE_LABEL))
    else:
        signed = seg.dtype if seg.dtype.kind == "i" else np.dtype(np.int16)
        out_seg = seg[(slice(None), *slices)].astype(signed, copy=True)
        out_seg[(out_seg == 0) & ~inside] = OUTSIDE_LABEL
    return CropResult(cropped, out_seg, bbox)
