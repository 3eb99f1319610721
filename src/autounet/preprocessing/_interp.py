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
    """Pad ``x`` along ``axis`` with edge values and, for cubic splines, turn it into spline coefficients."""
    if taps.pad == 0:
        return x
    pad = [(0, 0)] * x.ndim
    pad[axis] = (taps.pad, taps.pad)
    padded = np.pad(x, pad, mode="edge")
    return ndimage.spline_filter1d(padded, order=taps.order, axis=axis, mode="nearest", output=x.dtype)


def resize_axis(x: np.ndarray, axis: int, n_out: int, order: int) -> np.ndarray:
    """Resize ``x`` along ``axis`` to ``n_out`` samples (dtype kept; float32 or float64 input)."""
    n_in = x.shape[axis]
    if n_in == n_out:
        return x
    taps = axis_taps(n_in, n_out, order)
    src = np.moveaxis(_prefilter(x, axis, taps), axis, 0)
    weights = taps.weights.astype(x.dtype)
    bshape = (n_out,) + (1,) * (x.ndim - 1)
    out = src[taps.indices[:, 0]]
    if taps.indices.shape[1] > 1:
        out *= weights[:, 0].reshape(bshape)
        for t in range(1, taps.indices.shape[1]):
            gathered = src[taps.indices[:, t]]
            gathered *= weights[:, t].reshape(bshape)
            out += gathered
            del gathered
    return np.moveaxis(out, 0, axis)


def resize_axes(x: np.ndarray, new_shape: tuple[int, ...], order: int, axes: tuple[int, ...]) -> np.ndarray:
    """Resize ``x`` along ``axes`` (indices into ``x.shape``) to the matching entries of ``new_shape``.

    Axes that shrink are processed first so that later passes touch fewer samples.
    """
    todo = [a for a in axes if x.shape[a] != new_shape[a]]
    todo.sort(key=lambda a: new_shape[a] / x.shape[a])
    for a in todo:
        x = resize_axis(x, a, new_shape[a], order)
    return np.ascontiguousarray(x)
