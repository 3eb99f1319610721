"""Package logger: silent until the CLI (or a user) enables it. Library code logs, never prints."""

from __future__ import annotations

import logging
import sys

logger = logging.getLogger("autounet")
logger.addHandler(logging.NullHandler())


def get_logger(name: str) -> logging.Logger:
    """A child logger of the package logger, e.g. ``get_logger(__name__)``."""
    return logging.getLogger(name if name.startswith("autounet") else f"autounet.{name}")


class _CurrentStderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at emit time (it may be swapped, e.g. by test capture)."""

    _autounet = True

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self):  # noqa: ANN201 - a text stream
        return sys.stderr

    @stream.setter
    def stream(self, _value: object) -> None:
        pass


def enable_logging(level: int = logging.INFO) -> None:
    """Send package log records to stderr (called by the CLI)."""
    if any(getattr(h, "_autounet", False) for h in logger.handlers):
        logger.setLevel(level)
        return
    handler = _CurrentStderrHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(level)
