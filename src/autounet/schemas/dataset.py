"""``DatasetSpec``: the reference's ``dataset.json``, typed. One reader (:func:`load_dataset_spec`), one writer
(:func:`save_dataset_spec`).

The file stays exactly in the reference's format (no schema header), because viewers, model zoos and converters
read and write it. Keys the spec does not model (``name``, ``description``, ``licence``, ...) are kept in
``extra`` and written back unchanged.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, ValidationInfo, field_validator
from pydantic.dataclasses import dataclass

from autounet._atomic import write_json_atomic
from autounet._log import get_logger
from autounet.errors import SchemaError
from autounet.names import check_file_ending, check_name
from autounet.schemas._base import RECORD_CONFIG, json_schema, read_json, validate, where_of
from autounet.workspace import DATASET_JSON

_log = get_logger(__name__)

LabelValue = int | tuple[int, ...]
REQUIRED_KEYS = ("channel_names", "labels", "numTraining", "file_ending")
_MODELLED = (*REQUIRED_KEYS, "regions_class_order", "overwrite_image_reader_writer", "dataset", "modality")


@dataclass(frozen=True, config=RECORD_CONFIG)
class CaseEntry:
    """One case of the explicit ``dataset`` listing: its image files (one per channel) and optional label file."""

    images: tuple[str, ...]
    label: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"images": list(self.images)}
        if self.label is not None:
            out["label"] = self.label
        return out


@dataclass(frozen=True, config=RECORD_CONFIG)
class DatasetSpec:
    """A raw dataset's ``dataset.json``.

    Attributes:
        channel_names: ``{"0": "MRI", "1": "T2", ...}``; the name selects the normalization scheme.
        labels: ``name -> int`` or ``name -> tuple of ints`` (a region); must contain ``background: 0``.
        num_training: ``numTraining``, the number of training cases.
        file_ending: e.g. ``.nii.gz``; images and labels share it.
        regions_class_order: one label value per foreground region (region datasets only).
        overwrite_image_reader_writer: a reader name or the reference's class name; ``None`` = automatic.
        dataset: explicit ``case id -> CaseEntry`` listing (paths relative to the dataset folder), or ``None``.
        extra: every other key, kept in order and written back unchanged.
    """

    channel_names: dict[str, str]
    labels: dict[str, LabelValue]
    num_training: Annotated[int, Field(alias="numTraining")]
    file_ending: str
    regions_class_order: tuple[int, ...] | None = None
    overwrite_image_reader_writer: str | None = None
    dataset: dict[str, CaseEntry] | None = None
    extra: dict[str, Any] = Field(default_factory=dict)

    # The checks below keep the messages users know (they name the key and show an example of a valid value).
    @field_validator("channel_names", mode="before")
    @classmethod
    def _check_channel_names(cls, value: Any, info: ValidationInfo) -> Any:
        return _channel_names(value, where_of(info, "dataset.json"))

    @field_validator("labels", mode="before")
    @classmethod
    def _check_labels(cls, value: Any, info: ValidationInfo) -> Any:
        return _labels(value, where_of(info, "dataset.json"))

    @field_validator("num_training", mode="before")
    @classmethod
    def _check_num_training(cls, value: Any, info: ValidationInfo) -> Any:
        return _int(value, f"{where_of(info, 'dataset.json')}: numTraining")

    @field_validator("file_ending", mode="before")
    @classmethod
    def _check_file_ending(cls, value: Any, info: ValidationInfo) -> Any:
        return _file_ending(value, where_of(info, "dataset.json"))

    @field_validator("regions_class_order", mode="before")
    @classmethod
    def _check_regions(cls, value: Any, info: ValidationInfo) -> Any:
        return _regions_class_order(value, where_of(info, "dataset.json"))

    @field_validator("overwrite_image_reader_writer", mode="before")
    @classmethod
    def _check_reader(cls, value: Any) -> Any:
        return _reader_name(value)

    @field_validator("dataset", mode="before")
    @classmethod
    def _check_listing(cls, value: Any, info: ValidationInfo) -> Any:
        return _case_listing(value, where_of(info, "dataset.json"))

    @property
    def name(self) -> str | None:
        """The optional ``name`` key."""
        value = self.extra.get("name")
        return None if value is None else str(value)

    @property
    def num_channels(self) -> int:
        """Number of input channels (``len(channel_names)``)."""
        return len(self.channel_names)

    def channel_list(self) -> tuple[str, ...]:
        """Channel names ordered by index."""
        return tuple(self.channel_names[k] for k in sorted(self.channel_names, key=int))

    def to_dict(self) -> dict[str, Any]:
        """The ``dataset.json`` dict (reference key names; regions as lists)."""
        out: dict[str, Any] = {
            "channel_names": dict(self.channel_names),
            "labels": {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.labels.items()},
        }
        if self.regions_class_order is not None:
            out["regions_class_order"] = list(self.regions_class_order)
        out["numTraining"] = self.num_training
        out["file_ending"] = self.file_ending
        if self.overwrite_image_reader_writer is not None:
            out["overwrite_image_reader_writer"] = self.overwrite_image_reader_writer
        if self.dataset is not None:
            out["dataset"] = {case: entry.to_dict() for case, entry in self.dataset.items()}
        out.update(self.extra)
        return out

    @classmethod
    def from_dict(cls, data: Any, *, where: str = "dataset.json") -> DatasetSpec:
        """Validate a ``dataset.json`` dict. The legacy key ``modality`` is accepted for ``channel_names``."""
        if not isinstance(data, Mapping):
            msg = f"{where}: expected a JSON object, got {type(data).__name__}."
            raise SchemaError(msg)
        data = dict(data)
        if "channel_names" not in data and "modality" in data:
            _log.warning("%s: the legacy key 'modality' is used as 'channel_names'.", where)
            data["channel_names"] = data["modality"]
        missing = [k for k in REQUIRED_KEYS if k not in data]
        if missing:
            msg = (f"{where}: missing key(s) {', '.join(missing)} (required: {', '.join(REQUIRED_KEYS)}; "
                   f"present: {', '.join(data) or 'none'}).")
            raise SchemaError(msg)
        modelled = {k: v for k, v in data.items() if k in _MODELLED and k != "modality"}
        return validate(cls, {**modelled, "extra": {k: v for k, v in data.items() if k not in _MODELLED}}, where=where)


def dataset_json_schema() -> dict[str, Any]:
    """JSON Schema of ``dataset.json`` (the reference's format: keys it does not model are allowed and kept)."""
    out = json_schema(DatasetSpec)
    extra = out["properties"].pop("extra")
    out["additionalProperties"] = True
    out["description"] = f"{out.get('description', '')} Other keys: {extra.get('title', 'extra')}, kept unchanged."
    return out


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or int(value) != value:
        msg = f"{what} must be an integer, got {value!r}."
        raise SchemaError(msg)
    return int(value)


def _channel_names(value: Any, where: str) -> dict[str, str]:
    if not isinstance(value, Mapping) or not value:
        msg = f"{where}: channel_names must be a non-empty object like {{\"0\": \"CT\"}}, got {value!r}."
        raise SchemaError(msg)
    keys = sorted(value, key=lambda k: int(k) if str(k).isdigit() else -1)
    if [str(k) for k in keys] != [str(i) for i in range(len(keys))]:
        msg = f"{where}: channel_names keys must be \"0\", \"1\", ... without gaps, got {list(value)}."
        raise SchemaError(msg)
    return {str(k): str(value[k]) for k in keys}


def _labels(value: Any, where: str) -> dict[str, LabelValue]:
    if not isinstance(value, Mapping) or not value:
        msg = f"{where}: labels must be a non-empty object like {{\"background\": 0, \"tumor\": 1}}, got {value!r}."
        raise SchemaError(msg)
    out: dict[str, LabelValue] = {}
    for name, v in value.items():
        what = f"{where}: label {name!r}"
        if isinstance(v, (list, tuple)):
            if not v:
                msg = f"{what} is an empty region; list at least one label value."
                raise SchemaError(msg)
            out[str(name)] = tuple(_int(x, what) for x in v)
        else:
            out[str(name)] = _int(v, what)
    return out


def _file_ending(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.startswith("."):
        msg = f"{where}: file_ending must be a string starting with '.', e.g. \".nii.gz\", got {value!r}."
        raise SchemaError(msg)
    return check_file_ending(value, what="file_ending", where=where, error=SchemaError)


def _regions_class_order(value: Any, where: str) -> tuple[int, ...] | None:
    if value is None:
        return None
    if not isinstance(value, (list, tuple)):
        msg = f"{where}: regions_class_order must be a list of label values, got {value!r}."
        raise SchemaError(msg)
    return tuple(_int(v, f"{where}: regions_class_order entry") for v in value)


def _reader_name(value: Any) -> str | None:
    if value is None or value == "None":
        return None
    return str(value)


def _case_listing(value: Any, where: str) -> dict[str, CaseEntry] | None:
    if value is None:
        return None
    if not isinstance(value, Mapping):
        msg = f"{where}: 'dataset' must map case ids to {{\"images\": [...], \"label\": ...}}."
        raise SchemaError(msg)
    out = {}
    for case, entry in value.items():
        images = entry.get("images") if isinstance(entry, Mapping) else None
        if isinstance(images, str):
            images = [images]
        if not isinstance(images, (list, tuple)) or not images:
            msg = f"{where}: case {case!r} in 'dataset' needs a non-empty 'images' list."
            raise SchemaError(msg)
        check_name(case, what="case id", where=f"{where}: 'dataset'", error=SchemaError)
        label = entry.get("label")
        if not all(isinstance(p, str) and p for p in images) or not (label is None or isinstance(label, str)):
            msg = f"{where}: case {case!r} in 'dataset': 'images' must list file paths and 'label' be one path."
            raise SchemaError(msg)
        out[str(case)] = CaseEntry(images=tuple(str(i) for i in images),
                                   label=None if label is None else str(label))
    return out


def load_dataset_spec(path: str | os.PathLike[str]) -> DatasetSpec:
    """Read and validate ``dataset.json`` (a file, or a dataset folder containing one)."""
    path = Path(path)
    if path.is_dir():
        path = path / DATASET_JSON
    return DatasetSpec.from_dict(read_json(path, what="dataset.json"), where=str(path))


def save_dataset_spec(spec: DatasetSpec, path: str | os.PathLike[str]) -> None:
    """Write ``spec`` atomically in the reference's ``dataset.json`` format."""
    path = Path(path)
    if path.is_dir():
        path = path / DATASET_JSON
    write_json_atomic(path, spec.to_dict(), indent=4)
