"""``autounet ensemble -i DIR1 DIR2 ... -o OUT``: average saved probabilities and write segmentations."""

from __future__ import annotations

import argparse
from typing import Any

from autounet.cli import _options
from autounet.cli.evaluate import default_workers

NAME = "ensemble"
HELP = "average the saved probabilities of several prediction folders and write segmentations"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``autounet ensemble``."""
    parser.add_argument("-i", "--input", nargs="+", required=True, metavar="DIR",
                        help="prediction folders written with --save-probabilities (same cases in each)")
    parser.add_argument("-o", "--output", required=True, metavar="DIR", help="output folder")
    parser.add_argument("--save-probabilities", action="store_true", help="also save the averaged probabilities")
    _options.workers(parser, default=None)


def run(args: argparse.Namespace, ctx: Any) -> int:
    """Ensemble and report the number of cases."""
    from autounet.ensembling import ensemble

    spec = ensemble(args.input, args.output, save_probabilities=args.save_probabilities,
                    workers=args.workers or default_workers(), progress=ctx.progress)
    print(f"{len(spec.cases)} cases ensembled from {len(spec.members)} folders -> {args.output}")
    return 0
