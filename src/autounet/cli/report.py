"""``autounet report DATASET``: a static HTML page with the cross-validation results of a dataset."""

from __future__ import annotations

import argparse
from typing import Any

from autounet.cli import _options

NAME = "report"
HELP = "write a static HTML validation report (CV table, suitability, training curves, best/worst overlays)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``autounet report``."""
    _options.dataset(parser)
    parser.add_argument("-o", "--output", metavar="FILE.html", default=None,
                        help="report file (default results/<dataset>/report/index.html)")
    parser.add_argument("--cases", type=int, default=2, help="best and worst cases shown (default 2 each)")


def run(args: argparse.Namespace, ctx: Any) -> int:
    """Build the report and print its path."""
    from autounet.report import build_report

    workspace = ctx.workspace()
    dataset = workspace.find_dataset(args.dataset)
    path = build_report(workspace, dataset, output=args.output, n_cases=args.cases)
    print(f"report -> {path}")
    return 0
