"""Regenerate the generated blocks of the docs pages from their one definition: ``python docs/generate.py``.

A block sits between ``<!-- BEGIN generated: NAME -->`` and ``<!-- END generated: NAME -->``; ``--check`` exits 1
when a page is out of date (``tests/unit/test_cli_conventions.py`` runs that check).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable
from pathlib import Path

DOCS = Path(__file__).resolve().parent


def _settings() -> str:
    from autounet.schemas.training import settings_markdown

    return settings_markdown()


def _components() -> str:
    from autounet.training.components import components_markdown

    return components_markdown()


#: page -> {block name: generator}
BLOCKS: dict[str, dict[str, Callable[[], str]]] = {
    "training.md": {"training settings": _settings, "components": _components},
}


def render(text: str, blocks: dict[str, Callable[[], str]]) -> str:
    """``text`` with every named block replaced by its generator's output."""
    for name, make in blocks.items():
        pattern = re.compile(rf"(<!-- BEGIN generated: {re.escape(name)} -->\n).*?(<!-- END generated: "
                             rf"{re.escape(name)} -->)", re.DOTALL)
        if not pattern.search(text):
            raise SystemExit(f"block {name!r} not found")
        made = make()
        text = pattern.sub(lambda m: m.group(1) + made + m.group(2), text)  # noqa: B023 - used at once
    return text


def main(argv: list[str]) -> int:
    """Rewrite the pages (or, with ``--check``, report those that are out of date)."""
    stale = []
    for page, blocks in BLOCKS.items():
        path = DOCS / page
        old = path.read_text(encoding="utf-8")
        new = render(old, blocks)
        if new != old:
            stale.append(page)
            if "--check" not in argv:
                path.write_text(new, encoding="utf-8")
    if stale and "--check" in argv:
        print(f"out of date: {', '.join(stale)} (run python docs/generate.py)", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
