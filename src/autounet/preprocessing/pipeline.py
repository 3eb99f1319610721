"""``preprocess_case``: one code path that turns a case's images (and labels) into network-ready arrays.

Order (the reference's): transpose -> crop to non-zero -> normalize (per channel, before resampling so that the
non-zero mask still fits) -> resample to the configuration's spacing -> sample class locations (training cases).
Training (``run``) and inference (``autounet.inference``) both call :func:`preprocess_case`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from autounet.errors import DatasetError, PlansError, UsageError
from autounet.io.geometry import ImageGeometry
from autounet.preprocessing.class_locations import LabelInfo, classes_to_sample, sample_class_locations
from autounet.preprocessing.crop import crop_to_nonzero
from autounet.preprocessing.normalize import NormalizationError, normalize_channel
from autounet.preprocessing.properties import CaseProperties
from autounet.preprocessing.resample import compute_new_shape, resample
from autounet.registry import Registry
from autounet.schemas._base import sha256_of
from autounet.schemas.plans import ConfigurationPlan, Plans

#: bump when a change to preprocessing changes its output arrays (invalidates stored cases)
PREPROCESSING_VERSION = 1

Preprocessor = Callable[..., "PreprocessedCase"]
PREPROCESSORS: Registry[Preprocessor] = Registry("preprocessor")


@dataclass(frozen=True)
class PreprocessedCase:
    """A preprocessed case: ``data`` float32 ``(c, z, y, x)``; ``seg`` int16 ``(1, z, y, x)`` with -1 outside the
    non-zero mask (for cases without labels: 0 inside, -1 outside); ``properties`` as stored."""

    data: np.ndarray
    seg: np.ndarray
    properties: CaseProperties


def resolve_configuration(plans: Plans, config: ConfigurationPlan | str) -> ConfigurationPlan:
    """A configuration plan from its name (or the plan itself)."""
    return plans.configuration(config) if isinstance(config, str) else config


def preprocessing_hash(plans: Plans, config: ConfigurationPlan | str, labels: LabelInfo | None = None) -> str:
    """SHA-256 of everything that determines a configuration's preprocessed arrays.

    Covers the transpose, the image reader, the CT intensity statistics, the configuration's spacing,
    normalization, resampling, patch size (chunking), preprocessor and data identifier, the class-location keys
    and :data:`PREPROCESSING_VERSION`; re-planning with identical settings therefore keeps stored cases valid.
    """
    config = resolve_configuration(plans, config)
    payload = {
        "version": PREPROCESSING_VERSION,
        "transpose_forward": list(plans.transpose_forward),
        "image_reader_writer": plans.image_reader_writer,
        "intensity": plans.foreground_intensity_properties_per_channel,
        "spacing": list(config.spacing),
        "normalization": [c.to_dict() for c in config.normalization],
        "resampling_data": config.resampling_data.to_dict(),
        "resampling_seg": config.resampling_seg.to_dict(),
        "patch_size": list(config.patch_size),
        "preprocessor": config.preprocessor,
        "data_identifier": config.data_identifier,
        "classes": [list(k) if isinstance(k, tuple) else k for k in classes_to_sample(labels)] if labels else None,
    }
    return sha256_of(payload)


def preprocess_case(images: np.ndarray, seg: np.ndarray | None, geometry: ImageGeometry, plans: Plans,
                    config: ConfigurationPlan | str, *, labels: LabelInfo | None = None, case_id: str = "case",
                    plans_sha256: str | None = None, copy: bool = True) -> PreprocessedCase:
    """Preprocess one case with the configuration's preprocessor (``default``).

    Args:
        images: float ``(c, a0, a1, a2)`` in the reader's axis order (as ``autounet.io.read_images`` returns).
        seg: integer labels ``(1, a0, a1, a2)`` for training cases, ``None`` at inference.
        geometry: the images' geometry (``geometry.spacing`` in the reader's axis order).
        plans / config: the plans and the configuration (name or resolved plan).
        labels: label semantics (``autounet.labels.LabelSpec``); required with ``seg`` for class locations.
        case_id: used in error messages and the properties.
        plans_sha256: precomputed :func:`preprocessing_hash` (computed when omitted).
        copy: ``False`` lets preprocessing normalize inside ``images`` (overwriting it) instead of a copy of the
            cropped region, saving one volume of memory; ``images`` must not be used afterwards.

    Raises:
        DatasetError: inconsistent shapes, non-finite intensities, non-integer labels, or an image the
            normalization scheme rejects (message names the case and channel).
        PlansError: a configuration the plans cannot support (wrong channel count, missing CT statistics).
    """
    config = resolve_configuration(plans, config)
    fn = PREPROCESSORS.get(config.preprocessor)
    if plans_sha256 is None:
        plans_sha256 = preprocessing_hash(plans, config, labels)
    return fn(images, seg, geometry, plans, config, labels=labels, case_id=case_id, plans_sha256=plans_sha256,
              copy=copy)


# ---- the default preprocessor ----------------------------------------------------------------------------------
def _check_inputs(images: np.ndarray, seg: np.ndarray | None, geometry: ImageGeometry, config: ConfigurationPlan,
                  case_id: str) -> None:
    if images.ndim != 4:
        msg = f"Case {case_id}: images must be channel-first (c, z, y, x), got shape {images.shape}."
        raise DatasetError(msg)
    if len(config.normalization) != images.shape[0]:
        msg = (f"Case {case_id}: {images.shape[0]} image channel(s) but configuration {config.name!r} has "
               f"{len(config.normalization)} normalization scheme(s) (one per channel).")
        raise PlansError(msg)
    if seg is not None and (seg.ndim != 4 or seg.shape[0] != 1 or seg.shape[1:] != images.shape[1:]):
        msg = (f"Case {case_id}: segmentation shape {seg.shape} does not match the images {images.shape} "
               "(expected (1, *spatial)). Check that image and label files belong together.")
        raise DatasetError(msg)
    if len(geometry.spacing) != 3 or min(geometry.spacing) <= 0:
        msg = f"Case {case_id}: invalid spacing {geometry.spacing}; every axis needs a positive spacing."
        raise DatasetError(msg)
    for c in range(images.shape[0]):
        if not np.isfinite(images[c]).all():
            msg = f"Case {case_id}: channel {c} contains NaN or infinite intensities."
            raise DatasetError(msg)


def _labels_as_int16(seg: np.ndarray, case_id: str) -> np.ndarray:
    lo: float
    hi: float
    if seg.dtype.kind in "iub":
        lo, hi = int(seg.min()), int(seg.max())
    else:
        if not np.array_equal(seg, np.round(seg)):
            msg = f"Case {case_id}: the segmentation contains non-integer values; labels must be integers."
            raise DatasetError(msg)
        lo, hi = float(seg.min()), float(seg.max())
    if lo < 0 or hi > np.iinfo(np.int16).max:
        msg = f"Case {case_id}: label values must lie in [0, 32767], found [{lo:g}, {hi:g}]."
        raise DatasetError(msg)
    return seg.astype(np.int16, copy=False)


def _target_spacing(config: ConfigurationPlan, spacing: Sequence[float]) -> tuple[float, float, float]:
    """The configuration's spacing; 2D configurations keep the native first (out-of-plane) spacing."""
    if len(config.spacing) == 2:
        return (float(spacing[0]), float(config.spacing[0]), float(config.spacing[1]))
    return tuple(float(s) for s in config.spacing)  # type: ignore[return-value]


def _normalize(data: np.ndarray, mask: np.ndarray, plans: Plans, config: ConfigurationPlan, case_id: str) -> None:
    intensity: Mapping[str, Any] = plans.foreground_intensity_properties_per_channel
    for c, component in enumerate(config.normalization):
        try:
            data[c] = normalize_channel(data[c], mask, component.name, component.params,
                                        intensity_properties=intensity.get(str(c)))
        except NormalizationError as exc:
            msg = f"Case {case_id}, channel {c}: {exc}"
            raise DatasetError(msg) from exc


@PREPROCESSORS.register("default", aliases=("DefaultPreprocessor",))
def default_preprocessor(images: np.ndarray, seg: np.ndarray | None, geometry: ImageGeometry, plans: Plans,
                         config: ConfigurationPlan, *, labels: LabelInfo | None, case_id: str,
                         plans_sha256: str, copy: bool = True) -> PreprocessedCase:
    """Transpose, crop, normalize, resample and sample class locations (see the module docstring)."""
    _check_inputs(images, seg, geometry, config, case_id)
    if seg is not None and labels is None:
        msg = f"Case {case_id}: preprocessing a labelled case needs the label semantics (labels=LabelSpec)."
        raise UsageError(msg)
    axes = (0, *(t + 1 for t in plans.transpose_forward))
    spacing_t = tuple(float(geometry.spacing[t]) for t in plans.transpose_forward)
    data_t = images.transpose(axes)
    seg_t = _labels_as_int16(seg, case_id).transpose(axes) if seg is not None else None
    shape_before = tuple(int(s) for s in data_t.shape[1:])

    cropped = crop_to_nonzero(data_t, seg_t)
    del seg_t
    own = not copy and images.dtype == np.float32
    data = cropped.data if own else np.array(cropped.data, dtype=np.float32, order="C", copy=True)
    seg_c = np.ascontiguousarray(cropped.seg, dtype=np.int16)
    bbox = tuple((lo, hi) for lo, hi in cropped.bbox)
    del cropped
    shape_crop = tuple(int(s) for s in data.shape[1:])

    target = _target_spacing(config, spacing_t)
    new_shape = compute_new_shape(shape_crop, spacing_t, target)
    _normalize(data, seg_c[0], plans, config, case_id)
    data = resample(data, new_shape, spacing_t, target, config.resampling_data)
    seg_c = resample(seg_c, new_shape, spacing_t, target, config.resampling_seg).astype(np.int16, copy=False)

    locations: dict[Any, np.ndarray] = {}
    annotated = None
    if seg is not None and labels is not None:
        classes = classes_to_sample(labels)
        locations = sample_class_locations(seg_c, classes)
        if labels.ignore_label is not None:
            annotated = classes[-1]
    props = CaseProperties(
        case_id=case_id, configuration=config.name, plans_sha256=plans_sha256, geometry=geometry,
        original_spacing=tuple(float(s) for s in geometry.spacing),  # type: ignore[arg-type]
        transpose_forward=tuple(int(t) for t in plans.transpose_forward),  # type: ignore[arg-type]
        shape_before_cropping=shape_before,  # type: ignore[arg-type]
        bbox_used_for_cropping=bbox,
        shape_after_cropping_and_before_resampling=shape_crop,  # type: ignore[arg-type]
        spacing_after_resampling=target, shape_after_resampling=tuple(int(s) for s in new_shape),  # type: ignore[arg-type]
        class_locations=locations, annotated_key=annotated if isinstance(annotated, tuple) else None,
    )
    return PreprocessedCase(data=np.ascontiguousarray(data, dtype=np.float32), seg=seg_c, properties=props)
