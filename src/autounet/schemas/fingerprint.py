"""Dataset fingerprint: per-case spacings and cropped shapes plus foreground intensity statistics per channel.

The file ``dataset_fingerprint.json`` keeps the reference's four keys with the reference's meaning, so the
reference planner can read our file unchanged (it reads those keys by name and ignores others; checked against
nnunetv2 2.8.1, whose only reader of this file is ``ExperimentPlanner.__init__``). Our additions sit beside them:
``schema``/``schema_version``/``provenance`` (with the dataset signature used to decide whether the file is
stale), ``case_identifiers``, ``shapes_before_crop``, ``image_reader`` and ``intensity_sampling``. A reference
fingerprint (without our header) loads too; its additions are then empty.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

from pydantic import Field, field_validator, model_validator
from pydantic.dataclasses import dataclass

from autounet.errors import SchemaError
from autounet.schemas._base import (
    RECORD_CONFIG,
    dump,
    header_schema,
    json_schema,
    read_json,
    save_record,
    sha256_of,
    unwrap,
    validate,
    wrap,
)

SCHEMA = "autounet/fingerprint"
SCHEMA_VERSION = 1
REFERENCE_KEYS = ("spacings", "shapes_after_crop", "foreground_intensity_properties_per_channel",
                  "median_relative_size_after_cropping")
EXTRA_KEYS = ("case_identifiers", "shapes_before_crop", "image_reader", "intensity_sampling")


@dataclass(frozen=True, config=RECORD_CONFIG)
class IntensityProperties:
    """Foreground intensity statistics of one channel (over the sampled foreground voxels of all cases)."""

    mean: float
    median: float
    std: float
    min: float
    max: float
    percentile_99_5: float
    percentile_00_5: float

    def to_dict(self) -> dict[str, float]:
        """Reference key order."""
        return dump(self)

    @classmethod
    def from_dict(cls, data: Any, *, where: str) -> IntensityProperties:
        return validate(cls, data, where=where)


@dataclass(frozen=True, config=RECORD_CONFIG)
class Fingerprint:
    """A dataset fingerprint.

    Attributes:
        spacings: per case, the reader's spacing (array axis order, not transposed).
        shapes_after_crop: per case, the spatial shape after cropping to the non-zero region.
        foreground_intensity_properties_per_channel: per channel (index = channel), foreground statistics.
        median_relative_size_after_cropping: median over cases of cropped voxels / original voxels.
        case_identifiers: per case, its identifier (same order as ``spacings``); empty for reference files.
        shapes_before_crop: per case, the original spatial shape; empty for reference files.
        image_reader: the image reader used (io registry name), or None.
        intensity_sampling: how the intensity statistics were computed (samples per case, seed, exactness).
        provenance: producer, version, time and the dataset signature.
    """

    spacings: tuple[tuple[float, ...], ...]
    shapes_after_crop: tuple[tuple[int, ...], ...]
    foreground_intensity_properties_per_channel: tuple[IntensityProperties, ...]
    median_relative_size_after_cropping: float
    case_identifiers: tuple[str, ...] = ()
    shapes_before_crop: tuple[tuple[int, ...], ...] = ()
    image_reader: str | None = None
    intensity_sampling: dict[str, Any] = Field(default_factory=dict)
    provenance: dict[str, Any] = Field(default_factory=dict)

    _OMIT_EMPTY: ClassVar[tuple[str, ...]] = EXTRA_KEYS

    @field_validator("foreground_intensity_properties_per_channel", mode="before")
    @classmethod
    def _per_channel(cls, value: Any) -> Any:
        """On disk the channels are an object keyed ``"0"``, ``"1"``, ...; in memory a tuple."""
        if not isinstance(value, dict):
            return value
        if sorted(value, key=_channel_key) != [str(i) for i in range(len(value))]:
            raise ValueError("foreground_intensity_properties_per_channel must be keyed '0', '1', ...")
        return [value[str(i)] for i in range(len(value))]

    @model_validator(mode="after")
    def _consistent(self) -> Fingerprint:
        n = len(self.spacings)
        if n == 0:
            raise ValueError("fingerprint: no cases")
        if len(self.shapes_after_crop) != n:
            msg = f"fingerprint: {n} spacings but {len(self.shapes_after_crop)} shapes_after_crop"
            raise ValueError(msg)
        for name in ("case_identifiers", "shapes_before_crop"):
            if getattr(self, name) and len(getattr(self, name)) != n:
                msg = f"fingerprint: {n} cases but {len(getattr(self, name))} {name}"
                raise ValueError(msg)
        if {len(s) for s in self.spacings} | {len(s) for s in self.shapes_after_crop} != {3}:
            raise ValueError("fingerprint: every spacing and shape must have 3 entries (2D data as (1, H, W))")
        return self

    @property
    def num_cases(self) -> int:
        """Number of cases."""
        return len(self.spacings)

    @property
    def num_channels(self) -> int:
        """Number of input channels."""
        return len(self.foreground_intensity_properties_per_channel)

    def body(self) -> dict[str, Any]:
        """The fingerprint's content without header and provenance (reference keys first)."""
        out = dump(self, omit_empty=self._OMIT_EMPTY)
        del out["provenance"]
        out["foreground_intensity_properties_per_channel"] = {
            str(i): p for i, p in enumerate(out["foreground_intensity_properties_per_channel"])}
        return out

    def sha256(self) -> str:
        """Hash of the content (independent of provenance), used as the plans' upstream hash."""
        return sha256_of(self.body())

    def to_dict(self) -> dict[str, Any]:
        """On-disk form: our header, provenance, then the reference keys and our additions."""
        return wrap(SCHEMA, SCHEMA_VERSION, self.body(), provenance=self.provenance or None)

    def to_reference_dict(self) -> dict[str, Any]:
        """Only the reference's four keys."""
        body = self.body()
        return {k: body[k] for k in REFERENCE_KEYS}

    @classmethod
    def from_dict(cls, data: Any, *, where: str = "fingerprint") -> Fingerprint:
        """Parse our format or a reference ``dataset_fingerprint.json``."""
        if isinstance(data, dict) and "schema" not in data:
            unknown = sorted(set(data) - set(REFERENCE_KEYS))
            if unknown:
                msg = f"{where} (reference format): unknown key(s) {', '.join(unknown)}."
                raise SchemaError(msg)
            return validate(cls, data, where=f"{where} (reference format)")
        data = unwrap(data, schema=SCHEMA, version=SCHEMA_VERSION, where=where)
        del data["schema"], data["schema_version"]
        data["provenance"] = data.get("provenance") or {}
        return validate(cls, data, where=where)


def fingerprint_json_schema() -> dict[str, Any]:
    """JSON Schema of ``dataset_fingerprint.json`` (the channels as an object keyed ``"0"``, ``"1"``, ...)."""
    out = header_schema(json_schema(Fingerprint), schema=SCHEMA, version=SCHEMA_VERSION)
    out["properties"]["foreground_intensity_properties_per_channel"] = {
        "type": "object", "patternProperties": {"^[0-9]+$": {"$ref": "#/$defs/IntensityProperties"}},
        "additionalProperties": False}
    return out


def _channel_key(key: str) -> int:
    return int(key) if str(key).isdigit() else -1


def load_fingerprint(path: str | os.PathLike[str]) -> Fingerprint:
    """Read a fingerprint file (ours or the reference's)."""
    return Fingerprint.from_dict(read_json(path, what="Fingerprint file"), where=f"fingerprint {os.fspath(path)}")


def save_fingerprint(path: str | os.PathLike[str], fingerprint: Fingerprint) -> None:
    """Write a fingerprint file atomically."""
    save_record(path, fingerprint.to_dict())
