"""Helpers for typed, versioned artefact records (dataset spec, fingerprint, plans, configs, summaries).

Every artefact file is a JSON object with ``schema``, ``schema_version`` and (for derived artefacts) a
``provenance`` block. Each schema module defines its records as frozen pydantic dataclasses (validated on
construction, so they behave like plain dataclasses for callers) plus one ``load``/``save`` pair; this module holds
what they share: reading JSON with clear errors, validation errors as one-line ``SchemaError`` messages, the JSON
form of a record, JSON Schemas, hashing, provenance and atomic saving.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from pydantic import ConfigDict, TypeAdapter, ValidationError, ValidationInfo

from autounet._atomic import write_json_atomic
from autounet._version import VERSION
from autounet.errors import SchemaError

PACKAGE_VERSION = VERSION
Migration = Callable[[dict[str, Any]], dict[str, Any]]
T = TypeVar("T")

#: Configuration of every record: unknown keys are errors, numbers are accepted where text is expected (reference
#: files write ids as numbers), fields are filled by name or by their on-disk alias, NaN is written as ``NaN``.
RECORD_CONFIG = ConfigDict(extra="forbid", coerce_numbers_to_str=True, validate_by_name=True, validate_by_alias=True,
                           ser_json_inf_nan="constants")


_ADAPTERS: dict[Any, TypeAdapter[Any]] = {}


def _adapter(cls: Any) -> TypeAdapter[Any]:
    """The (cached) pydantic adapter of a record type."""
    if cls not in _ADAPTERS:
        _ADAPTERS[cls] = TypeAdapter(cls)
    return _ADAPTERS[cls]


def validate(cls: type[T], data: Any, *, where: str) -> T:
    """Validate ``data`` (a dict as loaded from JSON) into ``cls``; problems raise one ``SchemaError`` line."""
    try:
        return _adapter(cls).validate_python(data, context={"where": where})  # type: ignore[no-any-return]
    except ValidationError as exc:
        raise SchemaError(describe(exc, where=where)) from None


def where_of(info: ValidationInfo, default: str) -> str:
    """The ``where`` text passed to :func:`validate` (for messages raised by field validators)."""
    context = info.context if isinstance(info.context, dict) else {}
    return str(context.get("where", default))


def describe(exc: ValidationError, *, where: str) -> str:
    """One line for a pydantic ``ValidationError``: missing keys, unknown keys, or the first bad value."""
    errors = exc.errors(include_url=False)
    missing = [_loc(e["loc"]) for e in errors if e["type"] == "missing"]
    unknown = [_loc(e["loc"]) for e in errors if e["type"] in ("unexpected_keyword_argument", "extra_forbidden")]
    if missing:
        return f"{where}: missing key(s) {', '.join(missing)}."
    if unknown:
        return f"{where}: unknown key(s) {', '.join(unknown)}."
    first = errors[0]
    at = f" {_loc(first['loc'])}" if first["loc"] else ""
    text = str(first["msg"]).removeprefix("Value error, ")
    shown = "" if first["type"] == "value_error" else f" (got {first.get('input')!r})"
    return f"{where}:{at} {text}{shown}."


def _loc(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc)


def dump(record: Any, *, omit_empty: Iterable[str] = ()) -> dict[str, Any]:
    """The JSON form of a record (aliases as keys, tuples as lists); keys in ``omit_empty`` are left out when
    their value is ``None`` or empty."""
    out: dict[str, Any] = _adapter(type(record)).dump_python(record, mode="python", by_alias=True)
    out = _jsonable(out)
    for key in omit_empty:
        if key in out and (out[key] is None or out[key] == [] or out[key] == {} or out[key] == ()):
            del out[key]
    return out


def _jsonable(value: Any) -> Any:
    """Tuples as lists, recursively (``mode="json"`` would turn NaN into None and keys of other types into text)."""
    if isinstance(value, dict):
        return {k: _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    return value


def json_schema(cls: Any) -> dict[str, Any]:
    """The JSON Schema of a record type (the body; header keys are added by :func:`header_schema`)."""
    return _adapter(cls).json_schema(by_alias=True, mode="serialization")


def header_schema(body: dict[str, Any], *, schema: str, version: int) -> dict[str, Any]:
    """Add the ``schema``/``schema_version``/``provenance`` header to a body schema."""
    out = dict(body)
    props = {"schema": {"const": schema}, "schema_version": {"const": version},
             "provenance": {"type": "object", "description": "producer, package version, creation time, upstream hash"}}
    out["properties"] = {**props, **body.get("properties", {})}
    out["required"] = ["schema", "schema_version", *body.get("required", [])]
    return out


def read_json(path: str | os.PathLike[str], *, what: str) -> Any:
    """Parse a JSON file; a missing or malformed file raises ``SchemaError`` naming the file and the problem."""
    path = Path(path)
    if not path.is_file():
        msg = f"{what} not found: {path}"
        raise SchemaError(msg)
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        msg = f"{what} {path} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}."
        raise SchemaError(msg) from exc
    except UnicodeDecodeError as exc:
        msg = f"{what} {path} is not UTF-8 text."
        raise SchemaError(msg) from exc


def check_keys(data: Mapping[str, Any], *, required: Iterable[str], allowed: Iterable[str], where: str) -> None:
    """Raise ``SchemaError`` listing missing required keys or unknown keys (with the allowed ones)."""
    required, allowed = set(required), set(allowed) | set(required)
    missing = sorted(required - set(data))
    unknown = sorted(set(data) - allowed)
    if missing:
        msg = f"{where}: missing key(s) {', '.join(missing)}."
        raise SchemaError(msg)
    if unknown:
        msg = f"{where}: unknown key(s) {', '.join(unknown)}. Allowed: {', '.join(sorted(allowed))}."
        raise SchemaError(msg)


def sha256_of(obj: Any) -> str:
    """SHA-256 of the canonical JSON text of ``obj`` (sorted keys), used to link artefacts to their inputs."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def make_provenance(producer: str, *, upstream_sha256: str | None = None) -> dict[str, Any]:
    """A provenance block: package version, creation time (UTC), producer and the upstream artefact's hash."""
    return {
        "package_version": PACKAGE_VERSION,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "producer": producer,
        "upstream_sha256": upstream_sha256,
    }


def wrap(schema: str, version: int, body: Mapping[str, Any], *,
         provenance: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The on-disk form of a record: schema header, provenance, then the body's keys."""
    out: dict[str, Any] = {"schema": schema, "schema_version": version}
    if provenance is not None:
        out["provenance"] = dict(provenance)
    out.update(body)
    return out


def unwrap(data: Any, *, schema: str, version: int, where: str,
           migrations: Mapping[int, Migration] | None = None) -> dict[str, Any]:
    """Check the header of a loaded record, apply migrations up to ``version`` and return the full dict.

    ``migrations[v]`` upgrades a version-``v`` dict to version ``v + 1``.
    """
    if not isinstance(data, dict):
        msg = f"{where}: expected a JSON object, got {type(data).__name__}."
        raise SchemaError(msg)
    if data.get("schema") != schema:
        msg = f"{where}: expected schema {schema!r}, found {data.get('schema')!r}."
        raise SchemaError(msg)
    found = data.get("schema_version")
    if not isinstance(found, int) or found < 1:
        msg = f"{where}: invalid schema_version {found!r}."
        raise SchemaError(msg)
    if found > version:
        msg = f"{where}: schema_version {found} is newer than this autounet supports ({version}). Upgrade autounet."
        raise SchemaError(msg)
    migrations = migrations or {}
    while found < version:
        if found not in migrations:
            msg = f"{where}: no migration from schema_version {found}."
            raise SchemaError(msg)
        data = migrations[found](dict(data))
        found += 1
        data["schema_version"] = found
    return dict(data)


def save_record(path: str | os.PathLike[str], record: Mapping[str, Any]) -> None:
    """Write a record's on-disk dict atomically."""
    write_json_atomic(path, record)
