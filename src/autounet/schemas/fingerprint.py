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
from dataclasses import dataclass, field, fields
from typing import Any

from autounet.errors import SchemaError
from autounet.schemas._base import check_keys, read_json, save_record, sha256_of, unwrap, wrap

SCHEMA = "autounet/fingerprint"
SCHEMA_VERSION = 1
REFERENCE_KEYS = ("spacings", "shapes_after_crop", "foreground_intensity_properties_per_channel",
                  "median_relative_size_after_cropping")
EXTRA_KEYS = ("case_identifiers", "shapes_before_crop", "image_reader", "intensity_sampling")


@dataclass(frozen=True)
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
        return {f.name: float(getattr(self, f.name)) for f in fields(self)}

    @classmethod
    def from_dict(cls, data: Any, *, where: str) -> IntensityProperties:
        names = [f.name for f in fields(cls)]
        if not isinstance(data, dict):
            msg = f"{where}: expected an object with {', '.join(names)}, got {data!r}."
            raise SchemaError(msg)
        check_keys(data, required=names, allowed=(), where=where)
        return cls(**{n: float(data[n]) for n in names})


@dataclass(frozen=True)
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
    intensity_sampling: dict[str, Any] = field(default_factory=dict)
    provenance: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        n = len(self.spacings)
        if n == 0:
            raise SchemaError("fingerprint: no cases.")
        if len(self.shapes_after_crop) != n:
            msg = f"fingerprint: {n} spacings but {len(self.shapes_after_crop)} shapes_after_crop."
            raise SchemaError(msg)
        for name in ("case_identifiers", "shapes_before_crop"):
            if getattr(self, name) and len(getattr(self, name)) != n:
                msg = f"fingerprint: {n} cases but {len(getattr(self, name))} {name}."
                raise SchemaError(msg)
        if {len(s) for s in self.spacings} | {len(s) for s in self.shapes_after_crop} != {3}:
            raise SchemaError("fingerprint: every spacing and shape must have 3 entries (2D data as (1, H, W)).")

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
        out: dict[str, Any] = {
            "spacings": [list(s) for s in self.spacings],
            "shapes_after_crop": [list(s) for s in self.shapes_after_crop],
            "foreground_intensity_properties_per_channel": {
                str(i): p.to_dict() for i, p in enumerate(self.foreground_intensity_properties_per_channel)},
            "median_relative_size_after_cropping": float(self.median_relative_size_after_cropping),
        }
        if self.case_identifiers:
            out["case_identifiers"] = list(self.case_identifiers)
        if self.shapes_before_crop:
            out["shapes_before_crop"] = [list(s) for s in self.shapes_before_crop]
        if self.image_reader is not None:
            out["image_reader"] = self.image_reader
        if self.intensity_sampling:
            out["intensity_sampling"] = dict(self.intensity_sampling)
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
            check_keys(data, required=REFERENCE_KEYS, allowed=(), where=f"{where} (reference format)")
            provenance: dict[str, Any] = {}
        else:
            data = unwrap(data, schema=SCHEMA, version=SCHEMA_VERSION, where=where)
            for key in ("schema", "schema_version"):
                data.pop(key)
            provenance = dict(data.pop("provenance", None) or {})
            check_keys(data, required=REFERENCE_KEYS, allowed=EXTRA_KEYS, where=where)
        props = data["foreground_intensity_properties_per_channel"]
        if not isinstance(props, dict) or sorted(props, key=_channel_key) != [str(i) for i in range(len(props))]:
            msg = f"{where}: foreground_intensity_properties_per_channel must be keyed '0', '1', ..."
            raise SchemaError(msg)
        try:
            return cls(
                spacings=tuple(tuple(float(v) for v in s) for s in data["spacings"]),
                shapes_after_crop=tuple(tuple(int(v) for v in s) for s in data["shapes_after_crop"]),
                foreground_intensity_properties_per_channel=tuple(
                    IntensityProperties.from_dict(props[str(i)], where=f"{where}: channel {i}")
                    for i in range(len(props))),
                median_relative_size_after_cropping=float(data["median_relative_size_after_cropping"]),
                case_identifiers=tuple(str(c) for c in data.get("case_identifiers", ())),
                shapes_before_crop=tuple(tuple(int(v) for v in s) for s in data.get("shapes_before_crop", ())),
                image_reader=data.get("image_reader"),
                intensity_sampling=dict(data.get("intensity_sampling") or {}),
                provenance=provenance,
            )
        except (TypeError, ValueError) as exc:
            msg = f"{where}: malformed value ({exc})."
            raise SchemaError(msg) from exc


def _channel_key(key: str) -> int:
    return int(key) if str(key).isdigit() else -1


def load_fingerprint(path: str | os.PathLike[str]) -> Fingerprint:
    """Read a fingerprint file (ours or the reference's)."""
    return Fingerprint.from_dict(read_json(path, what="Fingerprint file"), where=f"fingerprint {os.fspath(path)}")


def save_fingerprint(path: str | os.PathLike[str], fingerprint: Fingerprint) -> None:
    """Write a fingerprint file atomically."""
    save_record(path, fingerprint.to_dict())
