"""Export of predicted logits to the original geometry: resample, segment, revert crop and transpose (§7.3).

The reference resamples the whole ``(K, volume)`` logits array in float64 on the CPU before it segments; for
large CT with many classes that needs tens of GB. Here the logits are resampled slab by slab along the first axis
(order-1 linear, or nearest along a separate-z axis, with the reference's align-corners-false mapping and edge
clamping, i.e. what ``skimage.transform.resize(order=1, mode="edge")`` computes), each slab is segmented at once
(argmax, or region thresholding in ``regions_class_order``) and written into the uncropped segmentation. Only one
slab of resampled logits exists at a time, so peak memory stays bounded by the input logits plus the outputs.
The same code runs on NumPy arrays and on torch tensors, on the CPU and on CUDA (logits on the GPU are exported on
the GPU): it follows the array library of the logits (:mod:`autounet.inference.arrays`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from array_api_compat import array_namespace
from array_api_compat import device as device_of

from autounet.errors import ConfigError, UsageError
from autounet.inference.arrays import no_grad, to_numpy
from autounet.preprocessing.resample import ANISOTROPY_THRESHOLD, RESAMPLERS, resample, separate_z_axis
from autounet.schemas.plans import ComponentSpec

DEFAULT_SLAB_BYTES = 256 * 2**20


class LabelSemantics(Protocol):
    """What export needs from :class:`autounet.labels.LabelSpec`."""

    @property
    def has_regions(self) -> bool: ...

    @property
    def regions_class_order(self) -> Sequence[int] | None: ...  # set whenever has_regions

    @property
    def foreground_labels(self) -> Sequence[int]: ...


@dataclass(frozen=True)
class CaseGeometry:
    """Where a preprocessed case came from: everything needed to put a prediction back.

    All shapes and the box are in the transposed axis order (the order the network saw), ``spacing`` is the
    original image spacing in the reader's (untransposed) order.
    """

    shape_before_cropping: tuple[int, ...]
    bbox: tuple[tuple[int, int], ...]
    shape_after_cropping: tuple[int, ...]
    spacing: tuple[float, ...]
    transpose_forward: tuple[int, ...]
    transpose_backward: tuple[int, ...]

    @classmethod
    def from_properties(cls, properties: Any, *, transpose_forward: Sequence[int],
                        transpose_backward: Sequence[int]) -> CaseGeometry:
        """From preprocessing properties (a ``CaseProperties`` or the reference's dict, both with ``.get``)."""
        def get(key: str) -> Any:
            value = properties.get(key)
            if value is None:
                msg = f"Preprocessing properties lack {key!r}; cannot export the prediction."
                raise ConfigError(msg)
            return value

        return cls(
            shape_before_cropping=tuple(int(s) for s in get("shape_before_cropping")),
            bbox=tuple((int(a), int(b)) for a, b in get("bbox_used_for_cropping")),
            shape_after_cropping=tuple(int(s) for s in get("shape_after_cropping_and_before_resampling")),
            spacing=tuple(float(s) for s in get("spacing")),
            transpose_forward=tuple(int(t) for t in transpose_forward),
            transpose_backward=tuple(int(t) for t in transpose_backward),
        )

    @property
    def spacing_transposed(self) -> tuple[float, ...]:
        """The original spacing in the network's axis order."""
        return tuple(self.spacing[i] for i in self.transpose_forward)


@dataclass(frozen=True)
class ProbabilityResampling:
    """The plans' ``resampling_probabilities`` (reference default: order 1, nearest along a separate-z axis).

    The ``default`` resampler with orders 0/1 runs slab-wise here (bounded memory, on the logits' device). Any
    other registered resampler (``component``) is applied to the whole array with
    :func:`autounet.preprocessing.resample.resample` first, which is correct but not memory-bounded.
    """

    order: int = 1
    order_z: int = 0
    force_separate_z: bool | None = None
    threshold: float = ANISOTROPY_THRESHOLD
    component: ComponentSpec | None = None

    @classmethod
    def from_component(cls, component: ComponentSpec) -> ProbabilityResampling:
        """From the plans component; unknown resampler names raise ``ConfigError`` with suggestions."""
        name = RESAMPLERS.canonical(component.name)
        params = dict(component.params)
        order, order_z = int(params.get("order", 1)), int(params.get("order_z", 0))
        if name == "default" and order in (0, 1) and order_z in (0, 1) and not params.get("is_seg", False):
            return cls(order=order, order_z=order_z, force_separate_z=params.get("force_separate_z"),
                       threshold=float(params.get("threshold", ANISOTROPY_THRESHOLD)))
        return cls(component=component)

    @property
    def slab_wise(self) -> bool:
        """Whether the resampling runs slab-wise (the default resampler with order 0 or 1)."""
        return self.component is None


@dataclass
class ExportResult:
    """A prediction in the original array geometry: ``segmentation`` and optionally ``probabilities``."""

    segmentation: np.ndarray
    probabilities: np.ndarray | None = None


def axis_plan(n_in: int, n_out: int, order: int) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """Source indices ``(i0, i1)`` and weights ``w`` of one axis (``out = (1-w) x[i0] + w x[i1]``); None if equal.

    Align-corners-false mapping ``src = (n_in / n_out)(dst + 0.5) - 0.5`` with edge clamping; order 0 takes the
    nearest source sample (rounding half up, as ``scipy.ndimage.map_coordinates``).
    """
    if n_in == n_out:
        return None
    src = (np.arange(n_out, dtype=np.float64) + 0.5) * (n_in / n_out) - 0.5
    if order == 0:
        idx = np.clip(np.floor(src + 0.5), 0, n_in - 1).astype(np.int64)
        return idx, idx, np.zeros(n_out)
    src = np.clip(src, 0, n_in - 1)
    i0 = np.floor(src).astype(np.int64)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, src - i0


def _interp_axis(x: Any, axis: int, plan: tuple[np.ndarray, np.ndarray, np.ndarray] | None,
                 offset: int = 0) -> Any:
    """Linear/nearest interpolation of ``x`` along ``axis`` with an :func:`axis_plan` (indices shifted by offset)."""
    if plan is None:
        return x
    xp = array_namespace(x)
    i0, i1, w = plan
    dev = device_of(x)
    a = xp.take(x, xp.asarray(i0 - offset, device=dev), axis=axis)
    if not np.any(w):
        return a
    b = xp.take(x, xp.asarray(i1 - offset, device=dev), axis=axis)
    shape = [1] * x.ndim
    shape[axis] = len(w)
    weight = xp.reshape(xp.asarray(w, dtype=x.dtype, device=dev), tuple(shape))
    b -= a
    b *= weight
    a += b
    return a


class SlabResampler:
    """Resamples ``(K, a0, a1, a2)`` to a target shape, one slab of output rows (axis 0) at a time."""

    def __init__(self, in_shape: Sequence[int], out_shape: Sequence[int], orders: Sequence[int]) -> None:
        self.in_shape = tuple(int(s) for s in in_shape)
        self.out_shape = tuple(int(s) for s in out_shape)
        self.plans = [axis_plan(i, o, order) for i, o, order in zip(self.in_shape, self.out_shape, orders)]

    @property
    def identity(self) -> bool:
        return all(p is None for p in self.plans)

    def source_rows(self, start: int, stop: int) -> tuple[int, int]:
        """Half-open range of input rows that output rows ``[start, stop)`` read."""
        plan = self.plans[0]
        if plan is None:
            return start, stop
        return int(plan[0][start:stop].min()), int(plan[1][start:stop].max()) + 1

    def slab(self, x: Any, start: int, stop: int) -> Any:
        """Output rows ``[start, stop)`` of the resampled ``x``."""
        lo, hi = self.source_rows(start, stop)
        part = x[:, lo:hi]
        xp = array_namespace(part)
        plan0 = self.plans[0]
        if plan0 is not None:
            part = _interp_axis(part, 1, (plan0[0][start:stop], plan0[1][start:stop], plan0[2][start:stop]), lo)
        elif not xp.isdtype(part.dtype, "real floating"):
            part = xp.astype(part, xp.float32)
        part = _interp_axis(part, 2, self.plans[1])
        return _interp_axis(part, 3, self.plans[2])


def resampling_orders(current_spacing: Sequence[float], target_spacing: Sequence[float],
                      spec: ProbabilityResampling) -> tuple[int, ...]:
    """Per-axis interpolation order: ``spec.order``, and ``spec.order_z`` on a separate-z axis."""
    axis = separate_z_axis(current_spacing, target_spacing, force_separate_z=spec.force_separate_z,
                           threshold=spec.threshold)
    return tuple(spec.order_z if i == axis else spec.order for i in range(len(current_spacing)))


def segment_slab(logits: Any, labels: LabelSemantics) -> Any:
    """Label map of a logits slab: argmax (label mode) or sigmoid > 0.5 in ``regions_class_order``."""
    xp = array_namespace(logits)
    if not labels.has_regions:
        return xp.argmax(logits, axis=0)
    seg = xp.zeros(logits.shape[1:], dtype=xp.int32, device=device_of(logits))
    for i, label in enumerate(labels.regions_class_order or ()):
        seg[_sigmoid(logits[i]) > 0.5] = int(label)
    return seg


def probabilities_slab(logits: Any, labels: LabelSemantics) -> Any:
    """Softmax over channels (labels) or a per-channel sigmoid (regions), in float32."""
    if labels.has_regions:
        return _sigmoid(logits)
    xp = array_namespace(logits)
    e = xp.exp(logits - xp.max(logits, axis=0, keepdims=True))
    e /= xp.sum(e, axis=0, keepdims=True)
    return e


def _sigmoid(x: Any) -> Any:
    xp = array_namespace(x)
    return 1.0 / (1.0 + xp.exp(-x))


def segmentation_dtype(labels: LabelSemantics) -> np.dtype:
    """uint8 for fewer than 255 foreground labels, else uint16 (as the reference)."""
    return np.dtype(np.uint8 if len(labels.foreground_labels) < 255 else np.uint16)


def current_spacing_for(config_spacing: Sequence[float], case: CaseGeometry) -> tuple[float, ...]:
    """Spacing of the network's grid: the configuration's, or for 2D the case's out-of-plane spacing first."""
    if len(config_spacing) == len(case.shape_after_cropping):
        return tuple(float(s) for s in config_spacing)
    return (case.spacing_transposed[0], *(float(s) for s in config_spacing))


def _slab_rows(n_rows: int, bytes_per_row: int, budget: int) -> int:
    return max(1, min(n_rows, budget // max(1, bytes_per_row)))


def export_logits(logits: Any, case: CaseGeometry, *, config_spacing: Sequence[float],
                  labels: LabelSemantics, resampling: ProbabilityResampling = ProbabilityResampling(),
                  with_probabilities: bool = False, slab_bytes: int = DEFAULT_SLAB_BYTES) -> ExportResult:
    """Segmentation (and probabilities) in the original array geometry from preprocessed-space logits.

    Args:
        logits: ``(K, *preprocessed_shape)`` float logits (NumPy, or a CPU or CUDA tensor).
        case: the case's crop box, shapes, original spacing and transposes.
        config_spacing: the configuration's spacing (2 entries for 2D configurations).
        labels: label semantics (label or region mode).
        resampling: the plans' ``resampling_probabilities`` settings.
        with_probabilities: also return ``(K, *original_shape)`` float32 probabilities; outside the crop box
            background is 1 (label mode) or everything 0 (region mode).
        slab_bytes: memory budget of one slab of resampled logits.
    """
    with no_grad(logits):
        return _export(logits, case, config_spacing=config_spacing, labels=labels, resampling=resampling,
                       with_probabilities=with_probabilities, slab_bytes=slab_bytes)


def _export(x: Any, case: CaseGeometry, *, config_spacing: Sequence[float], labels: LabelSemantics,
            resampling: ProbabilityResampling, with_probabilities: bool, slab_bytes: int) -> ExportResult:
    if x.ndim != 4:
        msg = f"Expected logits (K, a0, a1, a2), got shape {tuple(x.shape)}."
        raise UsageError(msg)
    if len(case.bbox) != 3 or any(b - a != s for (a, b), s in zip(case.bbox, case.shape_after_cropping)):
        msg = f"Crop box {case.bbox} does not match the cropped shape {case.shape_after_cropping}."
        raise ConfigError(msg)
    current = current_spacing_for(config_spacing, case)
    xp = array_namespace(x)
    if not resampling.slab_wise:
        assert resampling.component is not None
        whole = resample(to_numpy(xp.astype(x, xp.float32)), case.shape_after_cropping, current,
                         case.spacing_transposed, resampling.component)
        x = xp.asarray(whole, device=device_of(x))
    orders = resampling_orders(current, case.spacing_transposed, resampling) if resampling.slab_wise else (1, 1, 1)
    resampler = SlabResampler(x.shape[1:], case.shape_after_cropping, orders)
    seg_full = np.zeros(case.shape_before_cropping, dtype=segmentation_dtype(labels))
    probs_full = _empty_probabilities(x.shape[0], case, labels) if with_probabilities else None
    out_rows = case.shape_after_cropping[0]
    row_bytes = 4 * x.shape[0] * (math.prod(case.shape_after_cropping[1:]) * 3 + math.prod(x.shape[2:]) * 2)
    step = _slab_rows(out_rows, row_bytes, slab_bytes)
    (z0, _), (y0, y1), (x0, x1) = case.bbox
    for start in range(0, out_rows, step):
        stop = min(out_rows, start + step)
        slab = xp.astype(resampler.slab(x, start, stop), xp.float32, copy=False)
        target = (slice(z0 + start, z0 + stop), slice(y0, y1), slice(x0, x1))
        if probs_full is not None:
            probs = probabilities_slab(slab, labels)
            probs_full[(slice(None), *target)] = to_numpy(probs)
            seg = segment_slab_from_probabilities(probs, labels)
        else:
            seg = segment_slab(slab, labels)
        seg_full[target] = to_numpy(seg)
        del slab
    segmentation = np.ascontiguousarray(seg_full.transpose(case.transpose_backward))
    if probs_full is not None:
        axes = (0, *(t + 1 for t in case.transpose_backward))
        probs_full = np.ascontiguousarray(probs_full.transpose(axes))
    return ExportResult(segmentation=segmentation, probabilities=probs_full)


def segment_slab_from_probabilities(probs: Any, labels: LabelSemantics) -> Any:
    """Label map of a probability slab (argmax, or > 0.5 in ``regions_class_order``)."""
    xp = array_namespace(probs)
    if not labels.has_regions:
        return xp.argmax(probs, axis=0)
    seg = xp.zeros(probs.shape[1:], dtype=xp.int32, device=device_of(probs))
    for i, label in enumerate(labels.regions_class_order or ()):
        seg[probs[i] > 0.5] = int(label)
    return seg


def _empty_probabilities(k: int, case: CaseGeometry, labels: LabelSemantics) -> np.ndarray:
    probs = np.zeros((k, *case.shape_before_cropping), dtype=np.float32)
    if not labels.has_regions:
        probs[0] = 1.0
    return probs
