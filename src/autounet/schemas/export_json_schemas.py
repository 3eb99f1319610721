"""Write the JSON Schemas of the public artefacts into a folder: ``python -m autounet.schemas.export_json_schemas DIR``.

The committed copies live in ``docs/schemas/``; ``tests/unit/schemas/test_json_schemas.py`` fails when they are not
what this module writes, so a changed record is always published with its schema (re-run the command above).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from autounet.schemas.case_properties import case_properties_json_schema
from autounet.schemas.checkpoint import checkpoint_json_schema
from autounet.schemas.dataset import dataset_json_schema
from autounet.schemas.fingerprint import fingerprint_json_schema
from autounet.schemas.plans import plans_json_schema
from autounet.schemas.results import results_json_schemas
from autounet.schemas.training import training_config_json_schema
from autounet.schemas.training_log import training_log_json_schema


def public_schemas() -> dict[str, dict[str, Any]]:
    """File name -> JSON Schema, for every public artefact."""
    makers: dict[str, Callable[[], dict[str, Any]]] = {
        "case_properties.schema.json": case_properties_json_schema,
        "checkpoint.schema.json": checkpoint_json_schema,
        "dataset.schema.json": dataset_json_schema,
        "dataset_fingerprint.schema.json": fingerprint_json_schema,
        "plans.schema.json": plans_json_schema,
        "training_config.schema.json": training_config_json_schema,
        "training_log_line.schema.json": training_log_json_schema,
    }
    out = {name: make() for name, make in makers.items()}
    out.update({f"{kind}.schema.json": schema for kind, schema in results_json_schemas().items()})
    for name, schema in out.items():
        schema.setdefault("$schema", "https://json-schema.org/draft/2020-12/schema")
        schema.setdefault("$id", name)
    return dict(sorted(out.items()))


def render(schema: dict[str, Any]) -> str:
    """The text written for one schema (stable: sorted keys, two-space indent, final newline)."""
    return json.dumps(schema, indent=2, sort_keys=True, ensure_ascii=True) + "\n"


def export(folder: Path) -> list[Path]:
    """Write every schema into ``folder``; returns the files written."""
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in public_schemas().items():
        path = folder / name
        path.write_text(render(schema), encoding="utf-8")
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        sys.stderr.write("usage: python -m autounet.schemas.export_json_schemas DIR\n")
        return 2
    for path in export(Path(args[0])):
        sys.stdout.write(f"{path}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
