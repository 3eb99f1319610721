"""MkDocs hooks of the documentation site (``mkdocs.yml`` names this file).

* The navigation is built here from :data:`NAV`, listing only pages that exist, then every other Markdown page
  under ``docs/`` (sorted, under "More"), so a new page appears in the site without editing ``mkdocs.yml``; to
  place it, add it to :data:`NAV`.
* ``benchmarks/RESULTS.md`` and ``benchmarks/results/*.md`` are published under ``benchmarks/`` so the
  Performance page can link to the measured figures where they are maintained.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from mkdocs.structure.files import File, Files

ROOT = Path(__file__).resolve().parents[1]

#: (section, [(title, page)]) in site order; pages that do not exist (yet) are left out.
NAV: list[tuple[str, list[tuple[str, str]]]] = [
    ("Home", [("Overview", "index.md")]),
    ("Guides", [
        ("Getting started", "guide/getting-started.md"),
        ("Datasets", "guide/datasets.md"),
        ("Any dataset", "any-dataset.md"),
        ("Planning", "guide/planning.md"),
        ("Preprocessing", "guide/preprocessing.md"),
        ("Augmentation", "guide/augmentation.md"),
        ("Networks and losses", "guide/networks.md"),
        ("Models", "models.md"),
        ("Training", "guide/training.md"),
        ("Training components", "training.md"),
        ("Inference", "guide/inference.md"),
        ("Evaluation and model selection", "guide/evaluation.md"),
        ("Reports", "guide/reports.md"),
        ("Deployment", "deploy.md"),
        ("Cluster", "cluster.md"),
        ("GPU", "gpu.md"),
        ("Safety", "safety.md"),
        ("Safety contracts", "safety-contracts.md"),
    ]),
    ("Reference", [
        ("CLI", "cli.md"),
        ("CLI conventions", "cli-conventions.md"),
        ("Python API", "api.md"),
        ("Artefact schemas", "schemas.md"),
        ("Compatibility with nnU-Net", "compatibility.md"),
        ("Performance", "performance.md"),
    ]),
    ("Benchmarks", [("All results", "benchmarks/RESULTS.md")]),
    ("Development", [("Architecture and contributing", "ARCHITECTURE.md")]),
]


def build_nav(pages: set[str]) -> list[dict[str, Any]]:
    """The ``nav`` for the given page paths (relative to ``docs/``, with ``/``)."""
    listed = {page for _, entries in NAV for _, page in entries}
    nav: list[dict[str, Any]] = []
    for section, entries in NAV:
        present = [{title: page} for title, page in entries if page in pages]
        if present:
            nav.append({section: present})
    stages = sorted(p for p in pages - listed if p.startswith("benchmarks/"))
    if stages:
        bench = next((entry for entry in nav if "Benchmarks" in entry), None)
        if bench is None:
            bench = {"Benchmarks": []}
            nav.append(bench)
        bench["Benchmarks"] += [{_title(p): p} for p in stages]
    others = sorted(p for p in pages - listed if not p.startswith("benchmarks/"))
    if others:
        nav.append({"More": [{_title(p): p} for p in others]})
    return nav


def _title(page: str) -> str:
    return Path(page).stem.replace("-", " ").replace("_", " ").capitalize()


def _benchmark_pages() -> list[Path]:
    folder = ROOT / "benchmarks"
    return [folder / "RESULTS.md", *sorted((folder / "results").glob("*.md"))]


def on_config(config: Any, **_: Any) -> Any:
    docs = Path(config["docs_dir"])
    pages = {p.relative_to(docs).as_posix() for p in docs.rglob("*.md")}
    pages |= {p.relative_to(ROOT).as_posix() for p in _benchmark_pages() if p.is_file()}
    config["nav"] = build_nav(pages)
    return config


def on_files(files: Files, *, config: Any) -> Files:
    for page in _benchmark_pages():
        if page.is_file():
            files.append(File(page.relative_to(ROOT).as_posix(), str(ROOT), config["site_dir"],
                              config["use_directory_urls"]))
    return files
