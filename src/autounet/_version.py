"""The package version, read once from the installed package's metadata (``pyproject.toml`` is the source)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def _read() -> str:
    try:
        return version("autounet")
    except PackageNotFoundError:  # running from a source tree that was never installed
        return "0+unknown"


VERSION = _read()
