"""Separable spline interpolation along one axis at a time (the engine behind :mod:`autounet.preprocessing.resample`).

Resizing an array to a new grid with tensor-product B-splines is separable: the n-D result equals a chain of 1-D
resizes, one per axis. The reference (``skimage.transform.resize`` -> ``scipy.ndimage.zoom``) evaluates all
``(order + 1) ** ndim`` taps per output voxel in float64; resizing one axis at a time needs only ``order + 1`` taps
per axis, axes whose size does not change are skipped, and the work runs in float32.

The 1-D operator reproduces ``scipy.ndimage.zoom(..., mode="nearest", grid_mode=True)`` (verified in the unit
tests to ~1e-16 in float64):

* source coordinate of output index ``i``: ``(i + 0.5) * n_in / n_out - 0.5`` (align-corners false);
* order 0: nearest sample ``floor(c + 0.5)``, clamped to the array;
* order 1: linear between ``floor(c)`` and ``floor(c) + 1`` with the coordinate clamped to ``[0, n_in - 1]``;
* order 3: the signal is padded by 12 samples with its edge values, converted to cubic B-spline coefficients
  (``scipy.ndimage.spline_filter1d``) and evaluated with the 4-tap cubic B-spline kernel; the coordinate is not
  clamped (the padding supplies the edge behaviour).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
from scipy import ndimage

SPLINE_PAD = 12
SUPPORTED_ORDERS = (0, 1, 3)
# values per slab when applying taps (bounds the temporaries of one resize to ~32 MB in float32)
_SLAB_VALUES = 1 << 23


@dataclass(frozen=True)
class AxisTaps:
    """Interpolation taps of one axis: ``out[i] = sum_t weights[i, t] * src[indices[i, t]]``.

    ``pad`` is the number of edge samples the source must be padded with (and, for order 3, converted to spline
    coefficients) before ``indices`` apply.
    """

    indices: np.ndarray
    weights: np.ndarray
    pad: int
    order: int


def source_coordinates(n_in: int, n_out: int) -> np.ndarray:
    """Align-corners-false source coordinate of every output index (float64)."""
    scale = float(n_in) / float(n_out)
    return scale * (np.arange(n_out, dtype=np.float64) + 0.5) - 0.5


def _cubic_bspline(t: np.ndarray) -> np.ndarray:
    t = np.abs(t)
    inner = 2.0 / 3.0 - t * t + 0.5 * t * t * t
    outer = (2.0 - t) ** 3 / 6.0
    return np.where(t < 1.0, inner, np.where(t < 2.0, outer, 0.0))


@functools.lru_cache(maxsize=512)
def axis_taps(n_in: int, n_out: int, order: int) -> AxisTaps:
    """The taps resizing an axis of ``n_in`` samples to ``n_out`` with spline ``order`` (0, 1 or 3)."""
    if order not in SUPPORTED_ORDERS:
        msg = f"spline order {order} is not supported (supported: {', '.join(map(str, SUPPORTED_ORDERS))})"
        raise ValueError(msg)
    coords = source_coordinates(n_in, n_out)
    if order == 0:
        idx = np.clip(np.floor(coords + 0.5), 0, n_in - 1).astype(np.intp)[:, None]
        taps = AxisTaps(idx, np.ones((n_out, 1)), 0, 0)
    elif order == 1:
        c = np.clip(coords, 0.0, n_in - 1)
        lo = np.floor(c)
        frac = c - lo
        lo_i = lo.astype(np.intp)
        idx = np.stack([lo_i, np.minimum(lo_i + 1, n_in - 1)], axis=1)
        taps = AxisTaps(idx, np.stack([1.0 - frac, frac], axis=1), 0, 1)
    else:
        c = coords + SPLINE_PAD
        start = np.floor(c).astype(np.intp) - 1
        idx = start[:, None] + np.arange(4)[None, :]
        taps = AxisTaps(idx, _cubic_bspline(c[:, None] - idx), SPLINE_PAD, 3)
    taps.indices.setflags(write=False)
    taps.weights.setflags(write=False)
    return taps


def _prefilter(x: np.ndarray, axis: int, taps: AxisTaps) -> np.ndarray:
    """Pad ``x`` along ``axis`` with edge values and, for cubic splines, turn it into spline coefficients
    (in place: one padded copy of ``x`` is the only allocation)."""
    if taps.pad == 0:
        return x
    pad = [(0, 0)] * x.ndim
    pad[axis] = (taps.pad, taps.pad)
    padded = np.pad(x, pad, mode="edge")
    ndimage.spline_filter1d(padded, order=taps.order, axis=axis, mode="nearest", output=padded)
    return padded


def resize_axis(x: np.ndarray, axis: int, n_out: int, order: int) -> np.ndarray:
    """Resize ``x`` along ``axis`` to ``n_out`` samples (dtype kept; float32 or float64 input).

    The taps are gathered along ``axis`` in place (no axis reordering, so reads stay contiguous), one slab of
    another axis at a time, so that temporaries stay small (about ``_SLAB_VALUES`` values).
    """
    n_in = x.shape[axis]
    if n_in == n_out:
        return x
    taps = axis_taps(n_in, n_out, order)
    src = _prefilter(x, axis, taps)
    out_shape = list(x.shape)
    out_shape[axis] = n_out
    out = np.empty(out_shape, dtype=x.dtype)
    wshape = [1] * x.ndim
    wshape[axis] = n_out
    weights = [taps.weights[:, t].astype(x.dtype).reshape(wshape) for t in range(taps.weights.shape[1])]
    if x.ndim == 1:
        _apply_taps(src, axis, taps.indices, weights, out)
        return out
    slab_axis = 1 if axis == 0 else 0
    per_row = max(1, int(np.prod(out_shape, dtype=np.int64)) // out_shape[slab_axis])
    step = max(1, _SLAB_VALUES // per_row)
    for lo in range(0, out_shape[slab_axis], step):
        index = [slice(None)] * x.ndim
        index[slab_axis] = slice(lo, lo + step)
        _apply_taps(src[tuple(index)], axis, taps.indices, weights, out[tuple(index)])
    return out


def _apply_taps(src: np.ndarray, axis: int, indices: np.ndarray, weights: list[np.ndarray],
                out: np.ndarray) -> None:
    """``out = sum_t weights[t] * take(src, indices[:, t], axis)``."""
    first = np.take(src, indices[:, 0], axis=axis)
    if indices.shape[1] == 1:
        out[...] = first
        return
    np.multiply(first, weights[0], out=out)
    del first
    for t in range(1, indices.shape[1]):
        gathered = np.take(src, indices[:, t], axis=axis)
        gathered *= weights[t]
        out += gathered


def resize_axes(x: np.ndarray, new_shape: tuple[int, ...], order: int, axes: tuple[int, ...]) -> np.ndarray:
    """Resize ``x`` along ``axes`` (indices into ``x.shape``) to the matching entries of ``new_shape``.

    Axes that shrink are processed first so that later passes touch fewer samples.
    """
    todo = [a for a in axes if x.shape[a] != new_shape[a]]
    todo.sort(key=lambda a: new_shape[a] / x.shape[a])
    for a in todo:
        x = resize_axis(x, a, new_shape[a], order)
    return np.ascontiguousarray(x)
