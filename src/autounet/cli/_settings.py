"""Training-setting flags generated from the recipe and runtime definitions (``autounet.schemas.training``).

``train`` and ``run`` call :func:`add_training_flags` and :func:`training_settings`; a new recipe or runtime field
with a ``flag`` in its metadata is a new flag of both, with its help text, and a row of ``docs/training.md``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import types
import typing
from typing import Any

from autounet.cli._options import deprecated_alias
from autounet.schemas.training import field_type, setting_fields

DEST_PREFIX = "setting__"
_METAVARS = {int: "N", float: "X", str: "VALUE"}


def dest(name: str) -> str:
    """The argparse ``dest`` of the flag of setting ``name`` (for another spelling of it, e.g. ``-tr``)."""
    return DEST_PREFIX + name


def _scalar(annotation: Any) -> Any:
    """``int`` for ``int | None`` (and so on); the annotation itself otherwise."""
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        inner = [a for a in typing.get_args(annotation) if a is not type(None)]
        return inner[0] if len(inner) == 1 else str
    return annotation


def _key_value(text: str) -> tuple[str, Any]:
    key, sep, raw = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    try:
        value = json.loads(raw)  # numbers, true/false, [lists]
    except json.JSONDecodeError:
        value = raw
    return key.strip(), value


def add_training_flags(parser: argparse.ArgumentParser, *, exclude: tuple[str, ...] = ()) -> None:
    """One flag per recipe and runtime field that has a ``flag``; unset flags leave the budget's value."""
    group = parser.add_argument_group("training settings (docs/training.md; defaults: the full budget's)")
    for where, f in [(g, f) for g, f in setting_fields() if f.metadata["flag"] and f.name not in exclude]:
        kind = _scalar(field_type(where, f))
        flag, target, help_text = f.metadata["flag"], dest(f.name), f.metadata["help"]
        if kind in (int, float, str) and f.default not in (None, dataclasses.MISSING):
            help_text += f" (default {f.default})"
        extra: dict[str, Any] = {"metavar": f.metadata["metavar"] or _METAVARS.get(kind, "VALUE")}
        if kind is bool:
            const = not flag.startswith("--no-")
            group.add_argument(flag, dest=target, action="store_const", const=const, default=None, help=help_text)
            extra = {}
        elif typing.get_origin(kind) is dict or kind is dict:
            group.add_argument(flag, dest=target, action="append", type=_key_value, default=None, help=help_text,
                               **extra)
        else:
            group.add_argument(flag, dest=target, type=kind, default=None, help=help_text, **extra)
        for alias in f.metadata["aliases"]:
            deprecated_alias(group, alias, flag, dest=target, **extra)


def training_settings(args: argparse.Namespace) -> dict[str, Any]:
    """The settings given on the command line (recipe and runtime field names -> values)."""
    out: dict[str, Any] = {}
    for name, value in vars(args).items():
        if name.startswith(DEST_PREFIX) and value is not None:
            out[name[len(DEST_PREFIX):]] = dict(value) if isinstance(value, list) else value
    return out
