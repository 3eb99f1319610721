"""``CaseProperties``: what preprocessing records about one case (a typed, versioned JSON record, not a pickle).

The record is what inference needs to put a prediction back into the original geometry (original spacing and
geometry, shape before cropping, crop box, shape before resampling) plus the class locations for foreground
oversampling and the hash of the plans settings that produced the case. Class locations are integer arrays and
are stored beside the JSON in a compressed ``.npz`` (one array per class, in class order); the JSON lists the keys.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from autounet._atomic import write_bytes_atomic
from autounet.errors import SchemaError
from autounet.io.geometry import ImageGeometry
from autounet.preprocessing.class_locations import ClassKey
from autounet.schemas._base import read_json, unwrap, validate, wrap
from autounet.schemas.case_properties import SCHEMA, SCHEMA_VERSION, CasePropertiesFile, StoredFile

_REFERENCE_NAMES = {
    "spacing": "original_spacing",
    "shape_before_cropping": "shape_before_cropping",
    "bbox_used_for_cropping": "bbox_used_for_cropping",
    "shape_after_cropping_and_before_resampling": "shape_after_cropping_and_before_resampling",
    "class_locations": "class_locations",
}


@dataclass(frozen=True)
class CaseProperties:
    """Per-case preprocessing record.

    Attributes:
        case_id: the case identifier.
        configuration: configuration name the case was preprocessed for.
        plans_sha256: hash of the plans settings that determine the preprocessed arrays (see ``preprocessing_hash``).
        geometry: the original image geometry (as read; spacing in the reader's axis order).
        original_spacing: the original spacing, reader axis order (untransposed), as the reference stores it.
        transpose_forward: axis permutation applied before cropping.
        shape_before_cropping: spatial shape after transposing, before cropping.
        bbox_used_for_cropping: half-open crop box per (transposed) axis.
        shape_after_cropping_and_before_resampling: spatial shape of the crop.
        spacing_after_resampling: target spacing (transposed; 3 values, 2D keeps the native first one).
        shape_after_resampling: spatial shape of the stored arrays.
        class_locations: per class key, ``(k, 4)`` int64 voxel coordinates (empty dict for cases without labels).
        annotated_key: the class key meaning "annotated voxels" (datasets with an ignore label), else ``None``.
        label_values: the values the stored segmentation holds (-1, outside the non-zero mask, excluded); training
            refuses a case whose values the plans' labels do not declare. ``None`` in records of older versions.
        files: per stored file (``data``, ``seg``, ``locations``): ``{"size", "mtime_ns", "blake2b"}``, what the
            store checks the files against (see ``autounet.preprocessing.store``). ``None`` in older records.
    """

    case_id: str
    configuration: str
    plans_sha256: str
    geometry: ImageGeometry
    original_spacing: tuple[float, float, float]
    transpose_forward: tuple[int, int, int]
    shape_before_cropping: tuple[int, int, int]
    bbox_used_for_cropping: tuple[tuple[int, int], ...]
    shape_after_cropping_and_before_resampling: tuple[int, int, int]
    spacing_after_resampling: tuple[float, float, float]
    shape_after_resampling: tuple[int, int, int]
    class_locations: Mapping[ClassKey, np.ndarray] = field(default_factory=dict)
    annotated_key: tuple[int, ...] | None = None
    label_values: tuple[int, ...] | None = None
    files: Mapping[str, Mapping[str, Any]] | None = None

    def get(self, key: str, default: Any = None) -> Any:
        """Dict-style access by the reference's property names (``spacing``, ``class_locations``, ...)."""
        name = _REFERENCE_NAMES.get(key, key)
        return getattr(self, name, default)

    def to_json_dict(self) -> dict[str, Any]:
        """The JSON record (class locations are represented by their keys only)."""
        body = {
            "case_id": self.case_id,
            "configuration": self.configuration,
            "plans_sha256": self.plans_sha256,
            "geometry": self.geometry.to_dict(),
            "original_spacing": list(self.original_spacing),
            "transpose_forward": list(self.transpose_forward),
            "shape_before_cropping": list(self.shape_before_cropping),
            "bbox_used_for_cropping": [list(b) for b in self.bbox_used_for_cropping],
            "shape_after_cropping_and_before_resampling": list(self.shape_after_cropping_and_before_resampling),
            "spacing_after_resampling": list(self.spacing_after_resampling),
            "shape_after_resampling": list(self.shape_after_resampling),
            "class_location_keys": [_key_to_json(k) for k in self.class_locations],
            "annotated_key": list(self.annotated_key) if self.annotated_key is not None else None,
        }
        if self.label_values is not None:
            body["label_values"] = list(self.label_values)
        if self.files is not None:
            body["files"] = {k: dict(v) for k, v in self.files.items()}
        return wrap(SCHEMA, SCHEMA_VERSION, body)

    @classmethod
    def from_json_dict(cls, data: Any, *, class_locations: Mapping[ClassKey, np.ndarray] | None = None,
                       where: str = "case properties") -> CaseProperties:
        """Inverse of :meth:`to_json_dict` (class locations are passed in, read from the ``.npz``)."""
        data = unwrap(data, schema=SCHEMA, version=SCHEMA_VERSION, where=where)
        body = validate(CasePropertiesFile, {k: v for k, v in data.items() if k not in ("schema", "schema_version")},
                        where=where)
        keys = [_key_from_json(k) for k in body.class_location_keys]
        locations = dict(class_locations or {})
        if set(locations) != set(keys):
            msg = f"{where}: class locations {sorted(map(str, locations))} do not match the keys {keys}."
            raise SchemaError(msg)
        return cls(
            case_id=body.case_id,
            configuration=body.configuration,
            plans_sha256=body.plans_sha256,
            geometry=ImageGeometry.from_dict(body.geometry),
            original_spacing=_tuple(body.original_spacing, float),
            transpose_forward=_tuple(body.transpose_forward, int),
            shape_before_cropping=_tuple(body.shape_before_cropping, int),
            bbox_used_for_cropping=body.bbox_used_for_cropping,
            shape_after_cropping_and_before_resampling=_tuple(body.shape_after_cropping_and_before_resampling, int),
            spacing_after_resampling=_tuple(body.spacing_after_resampling, float),
            shape_after_resampling=_tuple(body.shape_after_resampling, int),
            class_locations={k: locations[k] for k in keys},
            annotated_key=body.annotated_key,
            label_values=body.label_values,
            files=_file_records(body.files, where),
        )


def _file_records(value: Mapping[str, StoredFile] | None, where: str) -> dict[str, dict[str, Any]] | None:
    """The validated ``files`` entries as plain dicts (``{"size", "mtime_ns", "blake2b"}``)."""
    del where  # validated by the record's schema
    if value is None:
        return None
    return {str(k): {"size": v.size, "mtime_ns": v.mtime_ns, "blake2b": v.blake2b} for k, v in value.items()}


def _tuple(values: Any, kind: type) -> Any:
    return tuple(kind(v) for v in values)


def _key_to_json(key: ClassKey) -> int | list[int]:
    return list(key) if isinstance(key, tuple) else int(key)


def _key_from_json(value: Any) -> ClassKey:
    return tuple(int(v) for v in value) if isinstance(value, (list, tuple)) else int(value)


def save_locations(locations_path: str | os.PathLike[str], props: CaseProperties) -> None:
    """Write the class locations (``.npz``), atomically."""
    arrays = {f"class_{i}": np.asarray(v, dtype=np.int64).reshape(-1, 4)
              for i, v in enumerate(props.class_locations.values())}
    buffer = io.BytesIO()
    np.savez_compressed(buffer, allow_pickle=False, **arrays)
    write_bytes_atomic(locations_path, buffer.getvalue())


def load_properties(json_path: str | os.PathLike[str], locations_path: str | os.PathLike[str]) -> CaseProperties:
    """Read a case's JSON record and its class locations."""
    json_path, locations_path = Path(json_path), Path(locations_path)
    data = read_json(json_path, what="Case properties")
    keys = [_key_from_json(k) for k in data.get("class_location_keys", [])] if isinstance(data, dict) else []
    locations: dict[ClassKey, np.ndarray] = {}
    if keys:
        if not locations_path.is_file():
            msg = f"Class locations of {json_path.name} missing: {locations_path}. Re-run preprocessing."
            raise SchemaError(msg)
        with np.load(locations_path) as npz:
            for i, key in enumerate(keys):
                locations[key] = npz[f"class_{i}"]
    return CaseProperties.from_json_dict(data, class_locations=locations, where=f"case properties {json_path}")
