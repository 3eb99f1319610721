"""Package logger: silent until the CLI (or a user) enables it. Library code logs, never prints."""

from __future__ import annotations

import logging

logger = logging.getLogger("autounet")
logger.addHandler(logging.NullHandler())


def get_logger(name: str) -> logging.Logger:
    """A child logger of the package logger, e.g. ``get_logger(__name__)``."""
    return logging.getLogger(name if name.startswith("autounet") else f"autounet.{name}")


def enable_logging(level: int = logging.INFO) -> None:
    """Send package log records to stderr (called by the CLI)."""
    if any(getattr(h, "_autounet", False) for h in logger.handlers):
        logger.setLevel(level)
        return
    handler = logging.StreamHandler()
    handler.setFormatter(logging.Formatter("%(message)s"))
    handler._autounet = True  # type: ignore[attr-defined]
    logger.addHandler(handler)
    logger.setLevel(level)
