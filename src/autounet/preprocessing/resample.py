"""Resampling of images, segmentations and probabilities to a new voxel grid (a registry of resamplers).

The plans name a resampler per use (``resampling_data``, ``resampling_seg``, ``resampling_probabilities``) as
``{"name": "default", "params": {"is_seg": ..., "order": ..., "order_z": ..., "force_separate_z": ...}}``.
``default`` follows the reference's ``resample_data_or_seg_to_shape``:

* **separate-z decision** (threshold 3): if ``max(spacing) / min(spacing) > 3`` for the current spacing, the
  axis with the largest current spacing is resampled separately; otherwise the same test on the target spacing;
  if two or three axes share the largest spacing, no separate axis. ``force_separate_z`` (True/False) skips the
  test (the axis then comes from the current spacing).
* **images** (``is_seg=False``): cubic B-spline (``order``) with edge extension, each channel clipped to its input
  range. With a separate axis, the in-plane axes are resized per slice (each slice clipped to its own range) and
  the separate axis with ``order_z`` (0: nearest).
* **segmentations** (``is_seg=True``): per-label interpolation of order ``order`` with argmax (see
  :mod:`autounet.preprocessing._labels_resize`); along a separate axis nearest neighbour (``order_z=0``).

Unlike the reference, the work is done in float32 (float64 input stays float64), one axis at a time, so a volume
needs a few float32 copies instead of several float64 ones, and axes whose size does not change are not touched.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from autounet.errors import ConfigError
from autounet.preprocessing._interp import SUPPORTED_ORDERS, resize_axes
from autounet.preprocessing._labels_resize import resize_labels
from autounet.registry import Registry
from autounet.schemas.plans import ComponentSpec

ANISOTROPY_THRESHOLD = 3.0

Resampler = Callable[..., np.ndarray]
RESAMPLERS: Registry[Resampler] = Registry("resampler")


def compute_new_shape(shape: Sequence[int], spacing: Sequence[float], new_spacing: Sequence[float]) -> tuple[int, ...]:
    """``round(spacing / new_spacing * shape)`` per axis (Python's round-half-to-even, as the reference)."""
    if not len(shape) == len(spacing) == len(new_spacing):
        msg = f"shape {tuple(shape)}, spacing {tuple(spacing)} and new spacing {tuple(new_spacing)} differ in length"
        raise ValueError(msg)
    return tuple(int(round(float(s) / float(n) * int(k))) for s, n, k in zip(spacing, new_spacing, shape))


def _is_anisotropic(spacing: Sequence[float], threshold: float) -> bool:
    return bool(max(spacing) / min(spacing) > threshold)


def _largest_axes(spacing: Sequence[float]) -> list[int]:
    largest = max(spacing)
    return [i for i, s in enumerate(spacing) if largest / s == 1]


def separate_z_axis(current_spacing: Sequence[float], new_spacing: Sequence[float], *,
                    force_separate_z: bool | None = None,
                    threshold: float = ANISOTROPY_THRESHOLD) -> int | None:
    """The axis to resample separately (with ``order_z``), or ``None`` for a joint resampling of all axes."""
    if force_separate_z is not None:
        axes = _largest_axes(current_spacing) if force_separate_z else []
    elif _is_anisotropic(current_spacing, threshold):
        axes = _largest_axes(current_spacing)
    elif _is_anisotropic(new_spacing, threshold):
        axes = _largest_axes(new_spacing)
    else:
        axes = []
    return axes[0] if len(axes) == 1 else None


def _resize_image_channel(channel: np.ndarray, new_shape: tuple[int, ...], *, order: int, order_z: int,
                          axis: int | None) -> np.ndarray:
    """One image channel (float32/float64) to ``new_shape``; clipped like ``skimage.transform.resize``."""
    ndim = channel.ndim
    if axis is None:
        out = resize_axes(channel, new_shape, order, tuple(range(ndim)))
        if order > 0:
            np.clip(out, channel.min(), channel.max(), out=out)
        return out
    in_plane = tuple(a for a in range(ndim) if a != axis)
    plane_shape = tuple(channel.shape[a] if a == axis else new_shape[a] for a in range(ndim))
    out = resize_axes(channel, plane_shape, order, in_plane)
    if order > 0 and out.shape != channel.shape:
        lo = channel.min(axis=in_plane, keepdims=True)
        hi = channel.max(axis=in_plane, keepdims=True)
        np.clip(out, lo, hi, out=out)
    if channel.shape[axis] != new_shape[axis]:
        out = resize_axes(out, new_shape, order_z, (axis,))
    return out


def _resize_seg_channel(channel: np.ndarray, new_shape: tuple[int, ...], *, order: int, order_z: int,
                        axis: int | None) -> np.ndarray:
    """One label channel to ``new_shape`` with the reference's per-label rule."""
    if axis is None:
        return resize_labels(channel, new_shape, order)
    plane = list(new_shape)
    plane[axis] = channel.shape[axis]
    moved = np.moveaxis(channel, axis, 0)
    moved_plane = tuple(plane[a] for a in range(channel.ndim) if a != axis)
    if order == 1:
        # slices are independent: resize all of them at once (first axis kept at its size)
        out = resize_labels(moved, (moved.shape[0], *moved_plane), order)
    else:
        out = np.stack([resize_labels(s, moved_plane, order) for s in moved])
    out = np.moveaxis(out, 0, axis)
    if channel.shape[axis] == new_shape[axis]:
        return out
    if order_z == 0:
        return resize_axes(out, new_shape, 0, (axis,))
    return _threshold_labels_along(out, new_shape, axis, order_z)


def _threshold_labels_along(seg: np.ndarray, new_shape: tuple[int, ...], axis: int, order: int) -> np.ndarray:
    """Reference rule for ``order_z > 0`` along the separate axis: ascending labels, ``round(score) > 0.5`` wins."""
    out = np.zeros(new_shape, dtype=seg.dtype)
    for lab in np.unique(seg):
        score = resize_axes((seg == lab).astype(np.float64), new_shape, order, (axis,))
        out[np.round(score) > 0.5] = lab
    return out


def _validate(array: np.ndarray, new_shape: Sequence[int], current_spacing: Sequence[float],
              new_spacing: Sequence[float], order: int, order_z: int) -> tuple[int, ...]:
    if array.ndim != 4:
        msg = f"expected a channel-first (c, z, y, x) array, got shape {array.shape}"
        raise ValueError(msg)
    new_shape = tuple(int(s) for s in new_shape)
    if len(new_shape) != 3 or len(current_spacing) != 3 or len(new_spacing) != 3:
        msg = (f"new shape {new_shape}, current spacing {tuple(current_spacing)} and new spacing "
               f"{tuple(new_spacing)} must have 3 entries")
        raise ValueError(msg)
    if any(s < 1 for s in new_shape):
        msg = f"cannot resample to shape {new_shape}: every axis needs at least one voxel"
        raise ValueError(msg)
    for name, value in (("order", order), ("order_z", order_z)):
        if value not in SUPPORTED_ORDERS:
            msg = f"resampling {name}={value} is not supported (use one of {SUPPORTED_ORDERS})"
            raise ConfigError(msg)
    return new_shape


@RESAMPLERS.register("default", aliases=("resample_data_or_seg_to_shape",))
def resample_data_or_seg_to_shape(array: np.ndarray, new_shape: Sequence[int], current_spacing: Sequence[float],
                                  new_spacing: Sequence[float], *, is_seg: bool = False, order: int = 3,
                                  order_z: int = 0, force_separate_z: bool | None = None,
                                  threshold: float = ANISOTROPY_THRESHOLD) -> np.ndarray:
    """Resample a channel-first ``(c, z, y, x)`` array to the spatial shape ``new_shape``.

    Args:
        array: images (float), probabilities/logits (float) or segmentations (integer, ``is_seg=True``).
        new_shape: target spatial shape (3 entries).
        current_spacing / new_spacing: spacings that decide the separate-z rule (not the shape).
        is_seg: per-label resizing instead of spline interpolation of values.
        order: spline order (0, 1 or 3) in-plane (or on every axis without a separate axis).
        order_z: order along the separate axis.
        force_separate_z: ``None`` decides by the anisotropy threshold; True/False forces the choice.
        threshold: the anisotropy ratio above which an axis is resampled separately.

    Returns:
        The resampled array with the input's dtype. The input itself is returned when the shape is unchanged.
    """
    new_shape = _validate(array, new_shape, current_spacing, new_spacing, order, order_z)
    if tuple(array.shape[1:]) == new_shape:
        return array
    axis = separate_z_axis(current_spacing, new_spacing, force_separate_z=force_separate_z, threshold=threshold)
    out: np.ndarray | None = None
    for c in range(array.shape[0]):
        if is_seg:
            channel = _resize_seg_channel(array[c], new_shape, order=order, order_z=order_z, axis=axis)
        else:
            work = array[c] if array.dtype in (np.float32, np.float64) else array[c].astype(np.float32)
            channel = _resize_image_channel(work, new_shape, order=order, order_z=order_z, axis=axis)
        if array.shape[0] == 1:
            return np.ascontiguousarray(channel, dtype=array.dtype)[None]
        if out is None:
            out = np.empty((array.shape[0], *new_shape), dtype=array.dtype)
        out[c] = channel
    assert out is not None
    return out


_DEFAULT_PARAMS = frozenset({"is_seg", "order", "order_z", "force_separate_z"})


def resample(array: np.ndarray, new_shape: Sequence[int], current_spacing: Sequence[float],
             new_spacing: Sequence[float], component: ComponentSpec | Mapping[str, Any]) -> np.ndarray:
    """Resample with the resampler a plans component names (``{"name": "default", "params": {...}}``)."""
    spec = component if isinstance(component, ComponentSpec) else ComponentSpec.from_dict(
        dict(component), where="resampling component")
    fn = RESAMPLERS.get(spec.name)
    unknown = set(spec.params) - _DEFAULT_PARAMS if fn is resample_data_or_seg_to_shape else set()
    if unknown:
        msg = (f"resampler {spec.name!r}: unknown parameter(s) {', '.join(sorted(unknown))}; "
               f"allowed: {', '.join(sorted(_DEFAULT_PARAMS))}")
        raise ConfigError(msg)
    return fn(array, new_shape, current_spacing, new_spacing, **spec.params)
