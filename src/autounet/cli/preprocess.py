"""``autounet preprocess DATASET``: crop, normalize and resample the training cases into the case store."""

from __future__ import annotations

import argparse
import os
from typing import Any

from autounet.cli import _options
from autounet.workspace import DEFAULT_PLANS_NAME

NAME = "preprocess"
HELP = "preprocess the labelled cases for the planned configurations (resumable; --clean redoes everything)"
DEFAULT_PLANS = DEFAULT_PLANS_NAME


def default_workers() -> int:
    """Worker processes by default: 4 (each holds one case in memory), at most the CPU count."""
    return max(1, min(4, os.cpu_count() or 1))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``autounet preprocess``."""
    _options.dataset(parser)
    parser.add_argument("-c", "--configurations", nargs="+", metavar="CONFIG",
                        help="configurations to preprocess (default: all in the plans; a cascade shares "
                             "3d_fullres's data)")
    _options.plans(parser, default=DEFAULT_PLANS)
    parser.add_argument("-j", "--workers", type=int, default=None,
                        help=f"worker processes (default {default_workers()}; each holds one case)")
    parser.add_argument("--clean", action="store_true",
                        help="delete stored cases and redo them all (default: keep up-to-date cases)")
    parser.add_argument("--check-store", action="store_true",
                        help="checksum every stored file before reusing its case (default: only files whose size or "
                             "modification time changed are checksummed)")


def preprocess_dataset(ctx: Any, dataset_name: str, plans_name: str, configurations: list[str] | None, *,
                       workers: int | None, clean: bool, echo: bool = True, full_check: bool = False) -> int:
    """Load the plans, run preprocessing and print one line per configuration (also used by ``plan --preprocess``)."""
    from autounet.planning.store import read_plans_file
    from autounet.preprocessing import run as run_preprocessing

    workspace = ctx.workspace()
    plans = read_plans_file(workspace.plans_file(dataset_name, plans_name))
    names = configurations or plans.configuration_names()
    summaries = run_preprocessing(workspace, dataset_name, plans, names, workers=workers or default_workers(),
                                  progress=ctx.progress, clean=clean, full_check=full_check)
    for s in summaries if echo else ():
        print(f"{s.configuration}: {len(s.processed)} case(s) preprocessed in {s.seconds:.1f} s, "
              f"{len(s.skipped)} up to date -> {s.folder}")
    return 0


def run(args: argparse.Namespace, ctx: Any) -> int:
    """Resolve the dataset and preprocess it."""
    workspace = ctx.workspace()
    dataset_name = workspace.find_dataset(args.dataset)
    return preprocess_dataset(ctx, dataset_name, args.plans, args.configurations, workers=args.workers,
                              clean=args.clean, full_check=args.check_store)
