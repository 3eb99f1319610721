"""``autounet run DATASET``: the whole method, from a raw dataset to a selected, validated model and its report."""

from __future__ import annotations

import argparse
from typing import Any

NAME = "run"
HELP = "verify, plan, preprocess, train all folds, select the best model and write the report (resumable)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``autounet run``."""
    parser.add_argument("dataset", metavar="DATASET", help="dataset id (4), name (Dataset004_Hippocampus) or path")
    parser.add_argument("-c", "--configurations", nargs="+", default=None, metavar="CONFIG",
                        help="configurations to train (default: 2d 3d_fullres 3d_lowres, where planned)")
    parser.add_argument("-f", "--folds", nargs="+", type=int, default=[0, 1, 2, 3, 4], metavar="FOLD",
                        help="cross-validation folds (default 0 1 2 3 4)")
    parser.add_argument("--preset", default="default", help="planner preset: default, resenc-m, resenc-l, resenc-xl")
    parser.add_argument("--budget", choices=("short", "full"), default="full",
                        help="training schedule: short (10 minutes per training, sized by measured iteration times) "
                             "or full (the method's 1000 x 250)")
    parser.add_argument("--time-budget", metavar="DURATION",
                        help="finish the whole run within DURATION (e.g. 40m, 8h): the time is divided over the "
                             "trainings, each sized by iteration times measured on this machine")
    parser.add_argument("--devices", nargs="+", default=["auto"], metavar="DEVICE",
                        help="training devices, e.g. cuda:0 cuda:1 (one training per device at a time)")
    parser.add_argument("--epochs", type=int, help="override the budget's number of epochs")
    parser.add_argument("--iters-per-epoch", type=int, dest="iterations_per_epoch",
                        help="override the budget's iterations per epoch")
    parser.add_argument("-j", "--workers", type=int, default=2, help="processes for CPU stages (default 2)")


def run(args: argparse.Namespace, ctx: Any) -> int:
    """Run the pipeline and print its summary."""
    from autounet.pipeline import RunOptions, format_summary
    from autounet.pipeline import run as run_pipeline
    from autounet.training.time_budget import parse_duration

    overrides = {k: v for k, v in (("epochs", args.epochs), ("iterations_per_epoch", args.iterations_per_epoch))
                 if v is not None}
    time_budget = parse_duration(args.time_budget) if args.time_budget else None
    if time_budget is not None and overrides:
        from autounet.errors import UsageError

        raise UsageError("--time-budget derives the schedule; do not combine it with --epochs / --iters-per-epoch.")
    options = RunOptions(folds=tuple(args.folds), preset=args.preset, budget=args.budget,
                         devices=tuple(args.devices), workers=args.workers, training_overrides=overrides,
                         progress=ctx.progress, time_budget=time_budget,
                         **({"configurations": tuple(args.configurations)} if args.configurations else {}))
    summary = run_pipeline(ctx.workspace(), args.dataset, options=options,
                           on_step=lambda step, message: print(f"[{step}] {message}", flush=True))
    print(format_summary(summary))
    return 0
