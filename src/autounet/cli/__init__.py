"""The ``autounet`` command: thin adapters over the Python API.

Each non-underscore module of this package is one subcommand. It defines ``NAME`` (the subcommand), ``HELP``
(one line), ``add_arguments(parser)`` and ``run(args, ctx) -> int``. Modules import heavy API code (torch, ...)
inside ``run`` so that ``autounet --help`` stays fast. ``main`` resolves the workspace once, maps
``AutounetError`` to a one-line message and exit code (2 usage/config, 1 runtime) and shows tracebacks only with
``--debug``.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from types import ModuleType

from autounet._log import enable_logging
from autounet.cli._reference_flags import translate
from autounet.errors import AutounetError
from autounet.workspace import Workspace, resolve_workspace


@dataclass
class Context:
    """What the edge resolved once: the workspace and output preferences."""

    workspace_arg: str | None
    quiet: bool
    progress: bool

    def workspace(self) -> Workspace:
        """The resolved workspace with its roots created."""
        return resolve_workspace(self.workspace_arg).ensure()


def _command_modules() -> list[ModuleType]:
    modules = []
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            modules.append(importlib.import_module(f"{__name__}.{info.name}"))
    return sorted(modules, key=lambda m: m.NAME)


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (one subparser per command module)."""
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--workspace", metavar="DIR", default=None,
                        help="workspace root (default: $AUTOUNET_HOME, nnUNet_* variables, ./autounet_workspace)")
    common.add_argument("--debug", action="store_true", help="show full tracebacks")
    common.add_argument("--quiet", action="store_true", help="only warnings and errors")
    common.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    parser = argparse.ArgumentParser(prog="autounet", description="Self-configuring biomedical image segmentation.")
    parser.add_argument("--version", action="version", version="autounet 0.1.0")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for module in _command_modules():
        p = sub.add_parser(module.NAME, help=module.HELP, description=module.HELP, parents=[common],
                           allow_abbrev=False)  # a prefix of ours never stands in for another option
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def _tolerate_any_locale() -> None:
    """Never fail on a character the terminal's encoding lacks (e.g. an ASCII locale): replace it."""
    for stream in (sys.stdout, sys.stderr):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="backslashreplace")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``autounet`` console script."""
    _tolerate_any_locale()
    try:  # nnU-Net's spellings (-device, -chk, --disable_tta, ...) -> ours, before argparse can misread them
        argv, notes = translate(sys.argv[1:] if argv is None else argv)
    except AutounetError as exc:
        print(f"autounet: error: {exc}", file=sys.stderr)
        return exc.exit_code
    args = build_parser().parse_args(argv)
    for note in notes:
        print(f"autounet {args.command}: note: {note}", file=sys.stderr)
    enable_logging(logging.WARNING if args.quiet else logging.INFO)
    ctx = Context(workspace_arg=args.workspace, quiet=args.quiet,
                  progress=args.progress and not args.quiet and sys.stderr.isatty())
    try:
        return int(args._run(args, ctx) or 0)
    except AutounetError as exc:
        if args.debug:
            raise
        print(f"autounet {args.command}: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print(f"autounet {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
