"""``autounet run DATASET``: the whole method, from a raw dataset to a selected, validated model and its report."""

from __future__ import annotations

import argparse
import dataclasses
from typing import Any

from autounet.cli import _options, _settings

NAME = "run"
HELP = "verify, plan, preprocess, train all folds, select the best model and write the report (resumable)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``autounet run``: what to run, then the generated training settings."""
    _options.dataset(parser)
    _options.configurations(parser, help="configurations to train (default: 2d 3d_fullres 3d_lowres "
                                         "3d_cascade_fullres, where planned)")
    _options.folds(parser)
    parser.add_argument("--preset", default="default", help="planner preset: default, resenc-m, resenc-l, resenc-xl")
    _options.budget(parser)
    parser.add_argument("--time-budget", metavar="DURATION",
                        help="finish the whole run within DURATION (e.g. 40m, 8h): the time is divided over the "
                             "trainings, each sized by iteration times measured on this machine")
    _options.devices(parser)
    _options.workers(parser, default=2, help="processes for the CPU stages (default 2)")
    _settings.add_training_flags(parser, exclude=("device",))


def run(args: argparse.Namespace, ctx: Any) -> int:
    """Run the pipeline and print its summary."""
    from autounet.pipeline import RunOptions, format_summary
    from autounet.pipeline import run as run_pipeline
    from autounet.training.time_budget import parse_duration

    settings = _settings.training_settings(args)
    time_budget = parse_duration(args.time_budget) if args.time_budget else None
    fixed = sorted({"epochs", "iterations_per_epoch", "val_iterations"} & set(settings))
    if time_budget is not None and fixed:
        from autounet.errors import UsageError

        raise UsageError("--time-budget derives the schedule; do not combine it with --epochs / --iters-per-epoch "
                         "/ --val-iters.")
    options = RunOptions(folds=tuple(args.folds), preset=args.preset, budget=args.budget,
                         devices=tuple(args.devices), workers=args.workers, training_overrides=settings,
                         progress=ctx.progress, time_budget=time_budget)
    if args.configurations:
        options = dataclasses.replace(options, configurations=tuple(args.configurations))
    summary = run_pipeline(ctx.workspace(), args.dataset, options=options,
                           on_step=lambda step, message: print(f"[{step}] {message}", flush=True))
    print(format_summary(summary))
    return 0
