"""The JSON record of one preprocessed case (``<case>.json`` in a configuration's folder), as written on disk.

``autounet.preprocessing.properties.CaseProperties`` is the in-memory form (with the image geometry and the class
locations as arrays, read from ``<case>_locations.npz``); this record is what its reader validates and what the
published JSON Schema describes.
"""

from __future__ import annotations

from typing import Any

from pydantic.dataclasses import dataclass

from autounet.schemas._base import RECORD_CONFIG, header_schema, json_schema

SCHEMA = "autounet/case_properties"
SCHEMA_VERSION = 1


@dataclass(frozen=True, config=RECORD_CONFIG)
class StoredFile:
    """What the case store checks one stored file against: its size, modification time and BLAKE2b digest."""

    size: int
    mtime_ns: int
    blake2b: str


@dataclass(frozen=True, config=RECORD_CONFIG)
class CasePropertiesFile:
    """The body of a case properties file (see ``CaseProperties`` for the meaning of each key).

    ``class_location_keys`` lists the class keys (a label, or a region as a list of labels) in the order of the
    arrays ``class_0``, ``class_1``, ... of the ``.npz`` beside it.
    """

    case_id: str
    configuration: str
    plans_sha256: str
    geometry: dict[str, Any]
    original_spacing: tuple[float, ...]
    transpose_forward: tuple[int, ...]
    shape_before_cropping: tuple[int, ...]
    bbox_used_for_cropping: tuple[tuple[int, int], ...]
    shape_after_cropping_and_before_resampling: tuple[int, ...]
    spacing_after_resampling: tuple[float, ...]
    shape_after_resampling: tuple[int, ...]
    class_location_keys: tuple[int | tuple[int, ...], ...]
    annotated_key: tuple[int, ...] | None = None
    label_values: tuple[int, ...] | None = None
    files: dict[str, StoredFile] | None = None


def case_properties_json_schema() -> dict[str, Any]:
    """JSON Schema of a case properties file."""
    return header_schema(json_schema(CasePropertiesFile), schema=SCHEMA, version=SCHEMA_VERSION)
