"""The ``autounet`` command: thin adapters over the Python API.

Each non-underscore module of this package is one subcommand. It defines ``NAME`` (the subcommand), ``HELP``
(one line), ``add_arguments(parser)`` and ``run(args, ctx) -> int``. Modules import heavy API code (torch, ...)
inside ``run`` so that ``autounet --help`` stays fast. Flags shared by several commands come from
:mod:`autounet.cli._options` (and the training settings from :mod:`autounet.cli._settings`), so that a concept is
spelled the same everywhere (docs/cli-conventions.md). The global flags (:func:`add_global_flags`) are accepted before
or after the subcommand. ``main`` resolves the workspace once, maps ``AutounetError`` to a one-line message and
exit code (2 usage/config, 1 runtime), every ``OSError`` (disk full, permission denied, ...) to one line
naming the file and what to do (exit 1), and shows tracebacks only with ``--debug``. This is the only place
errors become messages.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import pkgutil
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

from autounet._log import enable_logging
from autounet._version import VERSION
from autounet.cli import _options
from autounet.cli._reference_flags import translate
from autounet.errors import AutounetError, describe_os_error
from autounet.names import check_name
from autounet.workspace import Workspace, resolve_workspace


@dataclass
class Context:
    """What the edge resolved once: the workspace and output preferences."""

    workspace_arg: str | None
    quiet: bool
    progress: bool
    allow_external_data: bool = False
    created: list[Path] = field(default_factory=list)

    def workspace(self) -> Workspace:
        """The resolved workspace with its roots created (remembered, so that a failed command can remove them)."""
        ws = resolve_workspace(self.workspace_arg, allow_external_data=self.allow_external_data)
        for root in (ws.raw, ws.preprocessed, ws.results):
            path = root
            while not path.exists() and path != path.parent:
                self.created.append(path)
                path = path.parent
        return ws.ensure()

    def remove_created(self) -> None:
        """Remove the folders :meth:`workspace` created that are still empty (after a failed command)."""
        for path in sorted(set(self.created), key=lambda p: len(p.parts), reverse=True):
            with contextlib.suppress(OSError):
                path.rmdir()  # only succeeds on an empty folder


def _command_modules() -> list[ModuleType]:
    modules = []
    for info in pkgutil.iter_modules(__path__):
        if not info.name.startswith("_"):
            modules.append(importlib.import_module(f"{__name__}.{info.name}"))
    return sorted(modules, key=lambda m: m.NAME)


def add_global_flags(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    """``--workspace``, ``--debug``, ``--allow-external-data``, ``--quiet``, ``--no-progress``, ``--cluster``,
    ``--cluster-config``.

    The top-level parser holds the defaults; each subcommand parser repeats the flags with ``SUPPRESS`` defaults, so
    a flag given before the subcommand is not reset by the subcommand's parser and one given after it also counts.
    """
    def default(value: object) -> object:
        return argparse.SUPPRESS if suppress else value

    parser.add_argument("--workspace", metavar="DIR", default=default(None),
                        help="workspace root (default: $AUTOUNET_HOME, nnUNet_* variables, ./autounet_workspace)")
    parser.add_argument("--debug", action="store_true", default=default(False), help="show full tracebacks")
    parser.add_argument("--allow-external-data", action="store_true", default=default(False),
                        help="let a dataset.json 'dataset' listing name files outside its dataset folder")
    parser.add_argument("--quiet", action="store_true", default=default(False), help="only warnings and errors")
    parser.add_argument("--no-progress", dest="progress", action="store_false", default=default(True),
                        help="no progress bars")
    parser.add_argument("--cluster", metavar="WHERE", default=default(None),
                        help="run per-case work (and `run`'s trainings) on Dask: local-dask, tcp://HOST:8786, or "
                             "slurm|pbs|sge|lsf with --cluster-config (default: a local process pool)")
    parser.add_argument("--cluster-config", metavar="YAML", default=default(None),
                        help="dask-jobqueue settings for --cluster slurm|pbs|sge|lsf (see docs/cluster.md)")


def build_parser() -> argparse.ArgumentParser:
    """The full argument parser (one subparser per command module)."""
    common = argparse.ArgumentParser(add_help=False)
    add_global_flags(common, suppress=True)
    parser = argparse.ArgumentParser(prog="autounet", description="Self-configuring biomedical image segmentation.")
    parser.add_argument("--version", action="version", version=f"autounet {VERSION}")
    add_global_flags(parser, suppress=False)
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


#: options whose values become file or folder names: checked once, here, before any command runs
_NAME_OPTIONS = {"trainer_name": "--trainer-name", "trainer": "--trainer", "plans": "--plans",
                 "plans_name": "--plans-name", "configuration": "configuration", "configurations": "configuration",
                 "output_format": "--output-format", "name": "--name", "file_ending": "--file-ending"}


def _check_names(args: argparse.Namespace) -> None:
    """Refuse a name option with a path separator, ``..`` or an absolute path (``UsageError``, exit 2)."""
    from autounet.cli._settings import dest

    options = {**_NAME_OPTIONS, dest("trainer_name"): "--trainer"}  # the generated training flags
    for attr, label in options.items():
        value = getattr(args, attr, None)
        for item in value if isinstance(value, list | tuple) else [value]:
            if isinstance(item, str):
                check_name(item, what=label)


def _error_line(command: str, message: str) -> None:
    """The one line a failed command prints (``--debug`` shows the traceback instead)."""
    text = " ".join(message.split()) or "failed"
    print(f"autounet {command}: error: {text}", file=sys.stderr)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``autounet`` console script."""
    _tolerate_any_locale()
    try:  # nnU-Net's spellings (-device, -chk, --disable_tta, ...) -> ours, before argparse can misread them
        argv, notes = translate(sys.argv[1:] if argv is None else argv)
    except AutounetError as exc:
        print(f"autounet: error: {exc}", file=sys.stderr)
        return exc.exit_code
    parser = build_parser()
    args = parser.parse_args(argv)
    _options.finish(parser, args)
    for note in notes:
        print(f"autounet {args.command}: note: {note}", file=sys.stderr)
    enable_logging(logging.WARNING if args.quiet else logging.INFO)
    ctx = Context(workspace_arg=args.workspace, quiet=args.quiet,
                  progress=args.progress and not args.quiet and sys.stderr.isatty(),
                  allow_external_data=args.allow_external_data)
    try:
        _check_names(args)
        code = _run_on_cluster(args, ctx)
    except AutounetError as exc:
        ctx.remove_created()
        if args.debug:
            raise
        _error_line(args.command, str(exc))
        return exc.exit_code
    except OSError as exc:  # disk full, permission denied, a link loop, ...: one line, not a traceback
        ctx.remove_created()
        if args.debug:
            raise
        _error_line(args.command, describe_os_error(exc))
        return 1
    except KeyboardInterrupt:
        print(f"autounet {args.command}: interrupted", file=sys.stderr)
        return 130
    if code != 0:
        ctx.remove_created()
    return code


def _run_on_cluster(args: argparse.Namespace, ctx: Context) -> int:
    """Run the command with the executor ``--cluster`` names installed for every stage (none: local pool)."""
    if args.cluster is None:
        if args.cluster_config is not None:
            print(f"autounet {args.command}: warning: --cluster-config is ignored without --cluster", file=sys.stderr)
        return int(args._run(args, ctx) or 0)
    from autounet._parallel import using
    from autounet.pipeline.cluster import open_cluster

    workers = getattr(args, "workers", None) or 2
    with open_cluster(args.cluster, config=args.cluster_config, workers=workers) as executor, using(executor):
        return int(args._run(args, ctx) or 0)


if __name__ == "__main__":
    sys.exit(main())
