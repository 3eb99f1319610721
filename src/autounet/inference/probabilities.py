"""Saved probabilities (``--save-probabilities``): a compressed ``.npz`` plus a JSON metadata record.

``<case>.npz`` holds one array, ``probabilities`` (float32, ``(K, *original_array_shape)``, the reference's key
and layout). ``<case>.meta.json`` is a versioned record with what ensembling and post-processing need without
the model folder: the image geometry (to write a segmentation that lands on the input), the label semantics
(label or region mode, ``regions_class_order``), the channel meaning, the output file name and the model and
settings that produced it.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from autounet._atomic import atomic_path
from autounet.errors import SchemaError
from autounet.io import ImageGeometry
from autounet.labels import LabelSpec
from autounet.schemas._base import check_keys, make_provenance, read_json, save_record, unwrap, wrap
from autounet.workspace import PROBABILITIES_ENDING, PROBABILITIES_META_ENDING

SCHEMA = "autounet/probabilities"
SCHEMA_VERSION = 1
NPZ_KEY = "probabilities"


@dataclass(frozen=True)
class ProbabilityRecord:
    """Metadata of one saved probability map.

    Attributes:
        case_id: the case.
        shape: ``(K, *spatial)`` of the stored array (original array geometry).
        channels: what each channel is: label names (label mode) or region names (region mode).
        nonlinearity: ``softmax`` (label mode) or ``sigmoid`` (region mode).
        labels: the dataset's ``labels`` mapping and ``regions_class_order`` (:meth:`LabelSpec.to_dict`).
        geometry: the input image's geometry (:meth:`ImageGeometry.to_dict`).
        segmentation_file: name of the segmentation written beside it.
        model: dataset, plans, configuration, trainer, folds and checkpoint that produced it.
        settings: inference settings (tile step, mirroring axes, ...).
        provenance: package version and creation time.
    """

    case_id: str
    shape: tuple[int, ...]
    channels: tuple[str, ...]
    nonlinearity: str
    labels: dict[str, Any]
    geometry: dict[str, Any]
    segmentation_file: str
    model: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    def label_spec(self) -> LabelSpec:
        """The label semantics, rebuilt."""
        return LabelSpec.from_labels(self.labels["labels"], regions_class_order=self.labels.get("regions_class_order"))

    def image_geometry(self) -> ImageGeometry:
        """The input geometry, rebuilt."""
        return ImageGeometry.from_dict(self.geometry)

    def to_dict(self) -> dict[str, Any]:
        body = {"case_id": self.case_id, "shape": list(self.shape), "channels": list(self.channels),
                "nonlinearity": self.nonlinearity, "labels": self.labels, "geometry": self.geometry,
                "segmentation_file": self.segmentation_file, "model": self.model, "settings": self.settings}
        return wrap(SCHEMA, SCHEMA_VERSION, body, provenance=self.provenance or make_provenance("autounet predict"))

    @classmethod
    def from_dict(cls, data: Any, *, where: str = "probability record") -> ProbabilityRecord:
        data = unwrap(data, schema=SCHEMA, version=SCHEMA_VERSION, where=where)
        for key in ("schema", "schema_version"):
            data.pop(key)
        provenance = data.pop("provenance", {})
        required = ("case_id", "shape", "channels", "nonlinearity", "labels", "geometry", "segmentation_file")
        check_keys(data, required=required, allowed=("model", "settings"), where=where)
        return cls(case_id=str(data["case_id"]), shape=tuple(int(s) for s in data["shape"]),
                   channels=tuple(str(c) for c in data["channels"]), nonlinearity=str(data["nonlinearity"]),
                   labels=dict(data["labels"]), geometry=dict(data["geometry"]),
                   segmentation_file=str(data["segmentation_file"]), model=dict(data.get("model") or {}),
                   settings=dict(data.get("settings") or {}), provenance=dict(provenance))


def channel_names(labels: LabelSpec) -> tuple[str, ...]:
    """Name of each network output: label names in value order, or the foreground region names."""
    if labels.has_regions:
        return tuple(k for k, v in labels.labels.items()
                     if k != "ignore" and not (isinstance(v, tuple) and all(x == 0 for x in v)) and v != 0)
    by_value = {v: k for k, v in labels.labels.items() if k != "ignore" and not isinstance(v, tuple)}
    return tuple(by_value.get(v, str(v)) for v in labels.all_labels)


def probability_paths(output_dir: Path, case_id: str) -> tuple[Path, Path]:
    """``(<case>.npz, <case>.meta.json)`` in ``output_dir``."""
    return output_dir / f"{case_id}{PROBABILITIES_ENDING}", output_dir / f"{case_id}{PROBABILITIES_META_ENDING}"


def save_probabilities(output_dir: str | os.PathLike[str], record: ProbabilityRecord,
                       probabilities: np.ndarray) -> tuple[Path, Path]:
    """Write ``<case>.npz`` (compressed) and ``<case>.meta.json`` atomically; returns both paths."""
    if tuple(probabilities.shape) != tuple(record.shape):
        msg = f"Probabilities of {record.case_id} have shape {probabilities.shape}, the record says {record.shape}."
        raise SchemaError(msg)
    npz, meta = probability_paths(Path(output_dir), record.case_id)
    with atomic_path(npz) as tmp, tmp.open("wb") as fh:
        np.savez_compressed(fh, **{NPZ_KEY: probabilities.astype(np.float32, copy=False)})
    save_record(meta, record.to_dict())
    return npz, meta


def load_probabilities(npz_path: str | os.PathLike[str]) -> tuple[np.ndarray, ProbabilityRecord]:
    """Read ``<case>.npz`` and its ``<case>.meta.json``; ``SchemaError`` naming the file on any problem."""
    npz_path = Path(npz_path)
    case_id = npz_path.name[: -len(PROBABILITIES_ENDING)]
    meta_path = npz_path.with_name(f"{case_id}{PROBABILITIES_META_ENDING}")
    record = ProbabilityRecord.from_dict(read_json(meta_path, what="Probability record"), where=str(meta_path))
    try:
        with np.load(npz_path) as data:
            array = data[NPZ_KEY]
    except (OSError, KeyError, ValueError) as exc:
        msg = f"Cannot read probabilities {npz_path}: {exc}"
        raise SchemaError(msg) from exc
    if tuple(array.shape) != record.shape:
        msg = f"{npz_path} holds shape {array.shape}, but {meta_path.name} says {record.shape}."
        raise SchemaError(msg)
    return array, record


def settings_dict(settings: Mapping[str, Any]) -> dict[str, Any]:
    """JSON-ready copy of inference settings (tuples become lists)."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in settings.items()}
