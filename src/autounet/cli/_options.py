"""The flags shared by several commands, defined once (docs/cli-conventions.md).

Every command spells a concept the same way by adding it through these functions:

* ``DATASET``: ``-d/--dataset`` (id, name or folder); the per-dataset commands also take it as the first positional
  argument, and ``train`` takes ``DATASET CONFIG FOLD`` positionally (the reference's order);
* ``-c/--configuration`` (one) or ``-c/--configurations`` (several), ``-f/--fold`` or ``-f/--folds``;
* ``--plans NAME``, ``--trainer NAME``, ``--budget full|short``, ``--devices``, ``--device``;
* ``-j/--workers N``: always worker *processes*; ``--json``: always a switch printing JSON to stdout;
  ``-o/--output``: always the file or folder written.

Old spellings stay accepted as hidden aliases that print a deprecation warning (:func:`deprecated_alias`).
Positional shorthands are merged into their option by :func:`finish` after parsing.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from autounet.schemas.training import BUDGET_ALIASES, BUDGETS
from autounet.workspace import DEFAULT_PLANS_NAME

POSITIONAL_SUFFIX = "_positional"


def warn_deprecated(old: str, new: str) -> None:
    """One line on stderr: ``old`` still works but ``new`` is the spelling to use."""
    print(f"autounet: warning: {old} is deprecated; use {new}", file=sys.stderr)


class _DeprecatedAlias(argparse.Action):
    """Stores like the new option, after a deprecation warning naming the new spelling."""

    def __init__(self, option_strings: Sequence[str], dest: str, *, new: str, store_const: Any = None,
                 **kwargs: Any) -> None:
        self.new = new
        self.store_const = store_const
        if store_const is not None:
            kwargs["nargs"] = 0
        super().__init__(option_strings, dest, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace, values: Any,
                 option_string: str | None = None) -> None:
        warn_deprecated(str(option_string), self.new)
        setattr(namespace, self.dest, self.store_const if self.store_const is not None else values)


def deprecated_alias(parser: argparse.ArgumentParser | Any, old: str, new: str, *, dest: str,
                     **kwargs: Any) -> None:
    """Accept ``old`` (hidden from ``--help``) as a spelling of ``new`` that stores into ``dest``."""
    parser.add_argument(old, action=_DeprecatedAlias, new=new, dest=dest, help=argparse.SUPPRESS, **kwargs)


def _require(parser: argparse.ArgumentParser, option: str) -> None:
    parser.set_defaults(_required=(*(parser.get_default("_required") or ()), option))


def dataset(parser: argparse.ArgumentParser, *, positional: bool = True, required: bool = True,
            help: str = "dataset id (4), name (Dataset004_Hippocampus) or folder") -> None:
    """``-d/--dataset`` (and, with ``positional``, the first positional argument)."""
    if positional:
        parser.add_argument("dataset_positional", nargs="?", metavar="DATASET", help=f"{help} (or -d)")
    parser.add_argument("-d", "--dataset", default=None, metavar="DATASET", help=help)
    if required:
        _require(parser, "dataset")


def configuration(parser: argparse.ArgumentParser, *, positional: bool = False, required: bool = True,
                  help: str = "configuration (2d, 3d_fullres, 3d_lowres, 3d_cascade_fullres)") -> None:
    """``-c/--configuration`` (one configuration)."""
    if positional:
        parser.add_argument("configuration_positional", nargs="?", metavar="CONFIG", help=f"{help} (or -c)")
    parser.add_argument("-c", "--configuration", default=None, metavar="CONFIG", help=help)
    if required:
        _require(parser, "configuration")


def configurations(parser: argparse.ArgumentParser, *, default: Sequence[str] | None = None,
                   help: str = "configurations (default: those planned)") -> None:
    """``-c/--configurations`` (one or several)."""
    parser.add_argument("-c", "--configurations", nargs="+", default=list(default) if default else None,
                        metavar="CONFIG", help=help)


def fold(parser: argparse.ArgumentParser, *, positional: bool = False, required: bool = True) -> None:
    """``-f/--fold`` (one fold: 0-4, higher for a random 80:20 split, or ``all``)."""
    help_text = "fold 0-4 (higher: random 80:20 split) or 'all'"
    if positional:
        parser.add_argument("fold_positional", nargs="?", metavar="FOLD", help=f"{help_text} (or -f)")
    parser.add_argument("-f", "--fold", default=None, metavar="FOLD", help=help_text)
    if required:
        _require(parser, "fold")


def folds(parser: argparse.ArgumentParser, *, default: Sequence[int] | None = (0, 1, 2, 3, 4)) -> None:
    """``-f/--folds`` (several folds)."""
    parser.add_argument("-f", "--folds", nargs="+", type=int, default=list(default) if default else None,
                        metavar="FOLD", help="cross-validation folds (default 0 1 2 3 4)")


def plans(parser: argparse.ArgumentParser | Any, *, default: str | None = DEFAULT_PLANS_NAME, dest: str = "plans",
          help: str = f"plans identifier (default {DEFAULT_PLANS_NAME})") -> None:
    """``--plans NAME`` (``--plans-name`` is its deprecated spelling)."""
    parser.add_argument("--plans", default=default, dest=dest, metavar="NAME", help=help)
    deprecated_alias(parser, "--plans-name", "--plans", dest=dest, metavar="NAME")


def workers(parser: argparse.ArgumentParser, *, default: int | None = 2,
            help: str | None = None) -> None:
    """``-j/--workers N``: worker processes."""
    parser.add_argument("-j", "--workers", type=int, default=default, metavar="N",
                        help=help or f"worker processes (default {default if default is not None else 'CPUs, max 8'})")


def json_switch(parser: argparse.ArgumentParser, *, help: str = "print the result as JSON") -> None:
    """``--json``: print the command's result as JSON on stdout."""
    parser.add_argument("--json", action="store_true", help=help)


def _budget(text: str) -> str:
    if text in BUDGET_ALIASES:
        warn_deprecated(f"--budget {text}", f"--budget {BUDGET_ALIASES[text]}")
        return BUDGET_ALIASES[text]
    if text not in BUDGETS:
        raise argparse.ArgumentTypeError(f"choose from {', '.join(BUDGETS)} (got {text!r})")
    return text


def budget(parser: argparse.ArgumentParser, *, default: str = "full") -> None:
    """``--budget full|short`` (``reference`` is the deprecated spelling of ``full``)."""
    parser.add_argument("--budget", type=_budget, default=default, metavar="{full,short}",
                        help=f"training schedule: full (the method's 1000 x 250 iterations) or short (CPU-sized; "
                             f"see docs/training.md); other flags override it (default {default})")


def devices(parser: argparse.ArgumentParser) -> None:
    """``--devices DEVICE ...``: one training at a time per device."""
    parser.add_argument("--devices", nargs="+", default=["auto"], metavar="DEVICE",
                        help="training devices: auto, cpu, cuda, cuda:N, mps; several run independent trainings "
                             "concurrently, one process per device (e.g. cuda:0 cuda:1)")


def finish(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Merge positional shorthands into their options and check the required ones (``parser.error`` otherwise)."""
    parser = _command_parser(parser, getattr(args, "command", None))
    for name in [n for n in vars(args) if n.endswith(POSITIONAL_SUFFIX)]:
        value = getattr(args, name)
        delattr(args, name)
        option = name[: -len(POSITIONAL_SUFFIX)]
        given = getattr(args, option, None)
        if value is not None and given is not None and str(value) != str(given):
            parser.error(f"{option} given twice ({value!r} and {given!r})")
        setattr(args, option, given if given is not None else value)
    for option in getattr(args, "_required", ()) or ():
        if getattr(args, option, None) is None:
            flag = {"dataset": "-d/--dataset", "configuration": "-c/--configuration", "fold": "-f/--fold"}[option]
            parser.error(f"{option} is required ({flag})")


def _command_parser(parser: argparse.ArgumentParser, command: str | None) -> argparse.ArgumentParser:
    """The subcommand's parser (its usage line goes with the error), else ``parser``."""
    for action in parser._actions:  # argparse offers no public walk of its sub-parsers
        if isinstance(action, argparse._SubParsersAction) and command in action.choices:
            return action.choices[command]
    return parser
