"""Helpers for typed, versioned artefact records (dataset spec, fingerprint, plans, configs, summaries).

Every artefact file is a JSON object with ``schema``, ``schema_version`` and (for derived artefacts) a
``provenance`` block. Each schema module defines its record dataclasses plus one ``load``/``save`` pair; this
module holds what they share: reading JSON with clear errors, key checks, hashing, provenance and atomic saving.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

from autounet._atomic import write_json_atomic
from autounet._version import VERSION
from autounet.errors import SchemaError

PACKAGE_VERSION = VERSION
Migration = Callable[[dict[str, Any]], dict[str, Any]]


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
