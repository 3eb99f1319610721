"""``autounet verify DATASET``: check a raw dataset and list every problem (exit 0 clean, 1 otherwise)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from autounet.cli import _options

NAME = "verify"
HELP = "check a raw dataset before any expensive step; report all problems at once"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``autounet verify``."""
    _options.dataset(parser)
    parser.add_argument("-o", "--output", metavar="FILE.json", help="also write a machine-readable report to FILE")
    _options.deprecated_alias(parser, "--json", "-o/--output", dest="output", metavar="FILE")
    _options.workers(parser, default=2, help="processes for per-case checks (default 2)")
    parser.add_argument("--spacing-rtol", type=float, default=1e-3,
                        help="relative spacing tolerance between channels and label (default 1e-3)")
    parser.add_argument("--origin-atol", type=float, default=1e-3,
                        help="origin tolerance in mm between channels and label (default 1e-3)")
    parser.add_argument("--direction-atol", type=float, default=1e-3,
                        help="direction-cosine tolerance between channels and label (default 1e-3)")


def run(args: argparse.Namespace, ctx: Any) -> int:
    """Verify, print the report, optionally save it as JSON; exit code 0 only without problems."""
    from autounet.dataset import Tolerances, verify
    from autounet.workspace import resolve_workspace

    tolerances = Tolerances(spacing_rtol=args.spacing_rtol, origin_atol_mm=args.origin_atol,
                            direction_atol=args.direction_atol)
    workspace = resolve_workspace(ctx.workspace_arg, allow_external_data=ctx.allow_external_data)
    report = verify(args.dataset, workspace=workspace, workers=args.workers, progress=ctx.progress,
                    tolerances=tolerances)
    print(report.format())
    if args.output:
        report.save(args.output)
        print(f"report written to {args.output}", file=sys.stderr)
    return 0 if report.ok else 1
