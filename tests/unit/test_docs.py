"""The documentation matches the code: modules named on the architecture page exist, the CLI reference is the
parser's, and the site navigation lists only pages that exist."""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "autounet"
ARCHITECTURE = ROOT / "docs" / "ARCHITECTURE.md"


def _layout_block() -> list[str]:
    text = ARCHITECTURE.read_text(encoding="utf-8")
    return text.split("```\n", 2)[1].splitlines()


def test_every_module_on_the_architecture_page_exists() -> None:
    missing, package = [], PACKAGE
    for line in _layout_block():
        code = line.split("#", 1)[0]
        first = code.split()[0] if code.split() else ""
        if not line.startswith(" "):
            package = PACKAGE / first.rstrip("/") if first.endswith("/") else PACKAGE
            if first.endswith("/") and not package.is_dir():
                missing.append(first)
        for name in re.findall(r"\b([A-Za-z_][\w]*\.py)\b", code):
            if not (package / name).is_file() and not (PACKAGE / name).is_file():
                missing.append(f"{package.relative_to(PACKAGE)}/{name}")
    assert not missing, f"docs/ARCHITECTURE.md names modules that do not exist: {missing}"


def _is_module(name: str) -> bool:
    try:
        return importlib.util.find_spec(name) is not None
    except ModuleNotFoundError:  # a parent is a module, not a package
        return False


def test_dotted_names_on_the_architecture_page_resolve() -> None:
    text = ARCHITECTURE.read_text(encoding="utf-8")
    unresolved = []
    for dotted in sorted(set(re.findall(r"`(autounet(?:\.\w+)+)", text))):
        parts = dotted.split(".")
        for cut in range(len(parts), 0, -1):
            module = ".".join(parts[:cut])
            if _is_module(module):
                obj = importlib.import_module(module)
                try:
                    for attr in parts[cut:]:
                        obj = getattr(obj, attr)
                except AttributeError:
                    unresolved.append(dotted)
                break
        else:
            unresolved.append(dotted)
    assert not unresolved, f"docs/ARCHITECTURE.md names {unresolved}, which do not exist"


def test_cli_reference_is_current() -> None:
    from autounet.cli._reference import render

    committed = (ROOT / "docs" / "cli.md").read_text(encoding="utf-8")
    assert committed == render(), "docs/cli.md is stale: run `make docs` (python -m autounet.cli._reference docs/cli.md)"


def test_cli_reference_lists_every_command_and_flag() -> None:
    from autounet.cli import build_parser
    from autounet.cli._reference import render

    text = render()
    parser = build_parser()
    commands = next(a for a in parser._actions if a.__class__.__name__ == "_SubParsersAction").choices
    for name, sub in commands.items():
        assert f"## `autounet {name}`" in text
        for action in sub._actions:
            if action.help == argparse.SUPPRESS:  # deprecated spellings are hidden from the reference on purpose
                continue
            for flag in action.option_strings:
                if flag not in ("-h", "--help"):
                    assert flag in text, f"{flag} of {name} missing from the CLI reference"


def test_site_navigation_lists_only_existing_pages() -> None:
    sys.path.insert(0, str(ROOT / "tools"))
    try:
        hooks = pytest.importorskip("mkdocs_hooks")
    finally:
        sys.path.pop(0)
    nav = hooks.build_nav({"index.md", "guide/training.md", "new-page.md", "benchmarks/results/io.md"})
    pages = [page for section in nav for entries in section.values() for entry in entries for page in entry.values()]
    assert pages == ["index.md", "guide/training.md", "benchmarks/results/io.md", "new-page.md"]
    assert [next(iter(section)) for section in nav] == ["Home", "Guides", "Benchmarks", "More"]
