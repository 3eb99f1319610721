"""Helpers for the planning golden tests: run our planner for a manifest entry and diff JSON field by field."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from autounet.planning import plan
from autounet.planning.reference import export_plans
from autounet.schemas.fingerprint import load_fingerprint

GOLDEN = Path(__file__).resolve().parents[2] / "data" / "golden" / "planning"


def manifest() -> list[dict[str, Any]]:
    """The runs recorded by benchmarks/golden/make_planning.py."""
    path = GOLDEN / "manifest.json"
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else []


def our_reference_plans(entry: dict[str, Any]) -> dict[str, Any]:
    """Plan the manifest entry's dataset with our planner and export to the reference's format."""
    folder = GOLDEN / entry["dataset"]
    fingerprint = load_fingerprint(folder / "dataset_fingerprint.json")
    spec = json.loads((folder / "dataset.json").read_text(encoding="utf-8"))
    plans = plan(fingerprint, spec, preset=entry["preset"], gpu_memory_gb=entry.get("gpu_memory_gb"),
                 plans_name=entry.get("plans_name"), target_spacing=entry.get("target_spacing"),
                 dataset_name=entry["dataset"], image_reader=_reader(spec))
    return export_plans(plans)


def _reader(spec: dict[str, Any]) -> str:
    return "natural2d" if spec["file_ending"] == ".png" else "simpleitk"


def diff(ours: Any, theirs: Any, path: str = "") -> list[str]:
    """Readable differences (``path: ours != reference``); numbers compare by value (1 == 1.0)."""
    if isinstance(theirs, dict) and isinstance(ours, dict):
        out = []
        for key in sorted(set(ours) | set(theirs), key=str):
            where = f"{path}.{key}" if path else str(key)
            if key not in ours:
                out.append(f"{where}: missing in ours (reference: {theirs[key]!r})")
            elif key not in theirs:
                out.append(f"{where}: extra in ours ({ours[key]!r})")
            else:
                out += diff(ours[key], theirs[key], where)
        return out
    if isinstance(theirs, list | tuple) and isinstance(ours, list | tuple):
        if len(ours) != len(theirs):
            return [f"{path}: length {len(ours)} != reference {len(theirs)} ({ours!r} vs {theirs!r})"]
        out = []
        for i, (a, b) in enumerate(zip(ours, theirs, strict=True)):
            out += diff(a, b, f"{path}[{i}]")
        return out
    if _number(ours) and _number(theirs):
        same = math.isclose(float(ours), float(theirs), rel_tol=1e-12, abs_tol=0.0)
        return [] if same else [f"{path}: ours {ours!r} != reference {theirs!r}"]
    return [] if ours == theirs else [f"{path}: ours {ours!r} != reference {theirs!r}"]


def _number(x: Any) -> bool:
    return isinstance(x, int | float) and not isinstance(x, bool)
