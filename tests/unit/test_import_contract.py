"""Imports flow one way along the pipeline: a stage never imports a later stage (docs/ARCHITECTURE.md)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "src" / "autounet"

#: modules in pipeline order; a module may import only modules at its own rank or lower.
ORDER = [
    {"errors", "registry", "_log", "_atomic", "_parallel", "_progress", "_version", "names", "workspace", "types",
     "precision"},
    {"schemas"},
    {"io"},
    {"dataset", "labels", "testing"},
    {"fingerprint"},
    {"planning"},
    {"preprocessing"},
    {"augmentation", "networks", "sliding_window"},
    {"training"},
    {"inference"},
    {"evaluation"},
    {"postprocessing"},
    {"ensembling"},
    {"report"},
    {"pipeline"},
    {"api"},
    {"cli", "__main__", "__init__"},
]
RANK = {name: i for i, names in enumerate(ORDER) for name in names}


def _top(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "autounet" else None


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            top = _top(node.module)
            if top is None and node.module == "autounet":
                found.update(alias.name for alias in node.names)
            elif top is not None:
                found.add(top)
        elif isinstance(node, ast.Import):
            found.update(t for alias in node.names if (t := _top(alias.name)) is not None)
    return found


def _stage_of(path: Path) -> str:
    rel = path.relative_to(PACKAGE)
    return rel.parts[0].removesuffix(".py")


@pytest.mark.parametrize("path", sorted(PACKAGE.rglob("*.py")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_no_import_of_a_later_stage(path: Path) -> None:
    stage = _stage_of(path)
    assert stage in RANK, f"{stage} is not placed in the pipeline order of this test"
    later = sorted(m for m in _imports(path) if m in RANK and RANK[m] > RANK[stage])
    assert not later, f"{path.relative_to(PACKAGE)} ({stage}) imports later stage(s) {later}"
