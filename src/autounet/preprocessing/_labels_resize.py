"""Resizing label maps: each label's indicator is interpolated and the label with the largest score wins.

This is the reference's segmentation resizing (batchgenerators ``resize_segmentation`` as installed with
nnunetv2 2.8.1): per label ``l`` the score is the spline interpolation (``mode="edge"``, clipped to the
indicator's range) of ``seg == l``; the winner is the label with the highest score; exact ties go to the
nearest-neighbour label when it is among the tied labels, otherwise to the smallest tied label.

For order 1 (what the plans use) the score of a label at an output voxel is the sum of the interpolation
weights of those of the ``2 ** ndim`` surrounding input voxels that carry the label. :func:`resize_labels_linear`
evaluates exactly that, slab by slab, in the same floating-point order as ``scipy.ndimage`` (products of the
per-axis weights taken axis by axis, summed over the taps with the last axis fastest), so that exact ties are
detected exactly as the reference detects them. Its cost does not grow with the number of labels.
"""

from __future__ import annotations

import itertools

import numpy as np

from autounet.preprocessing._interp import axis_taps, resize_axes

# Output voxels processed at once by the order-1 label path (bounds its temporaries to ~100 MB).
_SLAB_VOXELS = 1 << 20


def _linear_weights(n_in: int, n_out: int) -> tuple[np.ndarray, np.ndarray]:
    """Linear taps of one axis with scipy's weight arithmetic (``w1 = 1 - (1 - frac)``)."""
    if n_in == n_out:
        idx = np.arange(n_in, dtype=np.intp)[:, None]
        return idx, np.ones((n_in, 1))
    taps = axis_taps(n_in, n_out, 1)
    w0 = taps.weights[:, 0]
    return taps.indices, np.stack([w0, 1.0 - w0], axis=1)


def _nearest_indices(n_in: int, n_out: int) -> np.ndarray:
    if n_in == n_out:
        return np.arange(n_in, dtype=np.intp)
    return axis_taps(n_in, n_out, 0).indices[:, 0]


def _corner_labels(seg: np.ndarray, taps: list[tuple[np.ndarray, np.ndarray]], rows: slice) -> list[np.ndarray]:
    """Label of every tap (corner) of the output rows ``rows``, in scipy's tap order (last axis fastest)."""
    out = []
    for corner in itertools.product(*(range(idx.shape[1]) for idx, _ in taps)):
        lab = seg.take(taps[0][0][rows, corner[0]], axis=0)
        for axis in range(1, seg.ndim):
            lab = lab.take(taps[axis][0][:, corner[axis]], axis=axis)
        out.append(lab)
    return out


def _mixed_winner(labels: np.ndarray, weights: np.ndarray, nn: np.ndarray) -> np.ndarray:
    """Winners at voxels whose corners carry different labels. ``labels``/``weights``: (corners, n)."""
    n_corners = labels.shape[0]
    scores = np.zeros(labels.shape)
    for k in range(n_corners):
        for j in range(n_corners):
            scores[k] += np.where(labels[j] == labels[k], weights[j], 0.0)
    best = scores.max(axis=0)
    at_top = scores == best
    big = np.iinfo(np.int64).max
    smallest_top = np.where(at_top, labels.astype(np.int64), big).min(axis=0)
    nn_top = (at_top & (labels == nn[None])).any(axis=0)
    return np.where(nn_top, nn, smallest_top)


def _winner(seg: np.ndarray, taps: list[tuple[np.ndarray, np.ndarray]], nearest: list[np.ndarray],
            rows: slice) -> np.ndarray:
    corners = _corner_labels(seg, taps, rows)
    first = corners[0]
    mixed = np.zeros(first.shape, dtype=bool)
    for lab in corners[1:]:
        mixed |= lab != first
    result = first.copy()
    where = np.nonzero(mixed)
    if where[0].size == 0:
        return result
    out_idx = (where[0] + rows.start, *where[1:])
    labels = np.stack([c[where] for c in corners])
    weights = []
    for corner in itertools.product(*(range(idx.shape[1]) for idx, _ in taps)):
        w = taps[0][1][out_idx[0], corner[0]]
        for axis in range(1, seg.ndim):
            w = w * taps[axis][1][out_idx[axis], corner[axis]]
        weights.append(w)
    nn = seg[tuple(nearest[axis][out_idx[axis]] for axis in range(seg.ndim))]
    result[where] = _mixed_winner(labels, np.stack(weights), nn)
    return result


def resize_labels_linear(seg: np.ndarray, new_shape: tuple[int, ...]) -> np.ndarray:
    """Resize a label map (any integer dtype, any ndim) with the order-1 per-label argmax rule.

    Only output voxels whose ``2 ** ndim`` source voxels carry different labels need scores; all others take
    that one label. The work runs in slabs of output rows to bound memory.
    """
    shape = seg.shape
    taps = [_linear_weights(n, m) for n, m in zip(shape, new_shape)]
    nearest = [_nearest_indices(n, m) for n, m in zip(shape, new_shape)]
    out = np.empty(new_shape, dtype=seg.dtype)
    per_row = max(1, int(np.prod(new_shape[1:], dtype=np.int64)))
    step = max(1, _SLAB_VOXELS // per_row)
    for start in range(0, new_shape[0], step):
        rows = slice(start, min(start + step, new_shape[0]))
        out[rows] = _winner(seg, taps, nearest, rows)
    return out


def resize_labels_generic(seg: np.ndarray, new_shape: tuple[int, ...], order: int) -> np.ndarray:
    """Per-label argmax for any supported order: one full interpolation per label present (slow path)."""
    present = np.unique(seg)
    if present.size == 1:
        return np.full(new_shape, present[0], dtype=seg.dtype)
    axes = tuple(range(seg.ndim))
    nn = resize_axes(seg.astype(np.float64), new_shape, 0, axes)
    best = None
    win = np.zeros(new_shape, dtype=np.intp)
    nn_top = np.zeros(new_shape, dtype=bool)
    for i, lab in enumerate(present):
        indicator = (seg == lab).astype(np.float64)
        score = resize_axes(indicator, new_shape, order, axes)
        np.clip(score, indicator.min(), indicator.max(), out=score)
        is_nn = nn == lab
        if best is None:
            best = score
            nn_top = is_nn & (score > 0)
            continue
        nn_top |= is_nn & (score == best) & (score > 0)
        better = score > best
        nn_top[better] = is_nn[better]
        win[better] = i
        np.maximum(best, score, out=best)
    result = present[win]
    result[nn_top] = nn[nn_top].astype(seg.dtype)
    return result.astype(seg.dtype)


def resize_labels(seg: np.ndarray, new_shape: tuple[int, ...], order: int) -> np.ndarray:
    """Resize a label map with the reference's rule (order 0: nearest; order >= 1: per-label argmax)."""
    new_shape = tuple(int(s) for s in new_shape)
    if seg.shape == new_shape:
        return seg.copy()
    if seg.size == 0:
        return np.zeros(new_shape, dtype=seg.dtype)
    if order == 0:
        return resize_axes(seg, new_shape, 0, tuple(range(seg.ndim)))
    if order == 1:
        return resize_labels_linear(seg, new_shape)
    return resize_labels_generic(seg, new_shape, order)
