"""``autounet find-best DATASET -c ...``: pick the best configuration or pair ensemble by cross-validation."""

from __future__ import annotations

import argparse
from typing import Any

from autounet.cli import _options
from autounet.cli.evaluate import default_workers
from autounet.workspace import DEFAULT_PLANS_NAME

NAME = "find-best"
HELP = "compare trained configurations and pair ensembles by cross-validation; write inference instructions"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``autounet find-best``."""
    _options.dataset(parser)
    parser.add_argument("-c", "--configurations", nargs="+", default=None, metavar="CONFIG",
                        help="configurations to compare (default 2d 3d_fullres 3d_lowres 3d_cascade_fullres; "
                             "those missing from the plans are skipped)")
    parser.add_argument("--plans", nargs="+", default=[DEFAULT_PLANS_NAME],
                        help=f"plans identifiers (default {DEFAULT_PLANS_NAME})")
    parser.add_argument("--trainer", nargs="+", default=None, help="trainer names (default nnUNetTrainer)")
    parser.add_argument("-f", "--folds", nargs="+", type=int, default=[0, 1, 2, 3, 4], help="folds (default 0-4)")
    parser.add_argument("--no-ensembling", action="store_true", help="compare single configurations only")
    parser.add_argument("--nsd-tolerance", type=float, default=None, metavar="MM",
                        help="NSD tolerance in mm of the stored summaries (default 2.0)")
    _options.workers(parser, default=None)
    _options.json_switch(parser, help="print inference_information.json's content")


def run(args: argparse.Namespace, ctx: Any) -> int:
    """Select, then print the instructions (or the record with ``--json``)."""
    import json
    from pathlib import Path

    from autounet.ensembling import DEFAULT_CONFIGURATIONS, find_best
    from autounet.evaluation import DEFAULT_NSD_TOLERANCE_MM
    from autounet.workspace import DEFAULT_TRAINER, INFERENCE_INSTRUCTIONS_TXT

    workspace = ctx.workspace()
    dataset = workspace.find_dataset(args.dataset)
    info = find_best(workspace, dataset, configurations=args.configurations or DEFAULT_CONFIGURATIONS,
                     trainers=args.trainer or (DEFAULT_TRAINER,), plans=args.plans, folds=args.folds,
                     allow_ensembling=not args.no_ensembling,
                     nsd_tolerance_mm=args.nsd_tolerance if args.nsd_tolerance is not None
                     else DEFAULT_NSD_TOLERANCE_MM,
                     workers=args.workers or default_workers(), progress=ctx.progress,
                     workspace_flag=str(Path(ctx.workspace_arg).resolve()) if ctx.workspace_arg else None)
    if args.json:
        print(json.dumps(info.to_dict(), allow_nan=True, indent=2))
    else:
        print((workspace.results_dataset(dataset) / INFERENCE_INSTRUCTIONS_TXT).read_text(encoding="utf-8"), end="")
    return 0
