"""``autounet convert-msd TASK_DIR``: convert a Medical Segmentation Decathlon task into a raw dataset."""

from __future__ import annotations

import argparse
from typing import Any

from autounet.cli import _options

NAME = "convert-msd"
HELP = "convert a Medical Segmentation Decathlon TaskNN_Name folder (4D images split into channel files)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``autounet convert-msd``."""
    parser.add_argument("task_dir", metavar="TASK_DIR", help="the MSD TaskNN_Name folder")
    parser.add_argument("--id", type=int, dest="dataset_id", help="dataset id (default: the task number)")
    _options.workers(parser, default=2)
    parser.add_argument("--clean", action="store_true", help="replace an existing dataset folder of that name")


def run(args: argparse.Namespace, ctx: Any) -> int:
    """Convert and print the new dataset's name."""
    from autounet.dataset import convert_msd

    name = convert_msd(args.task_dir, workspace=ctx.workspace(), dataset_id=args.dataset_id, workers=args.workers,
                       clean=args.clean)
    print(f"converted into {name}")
    print(f"next: autounet verify {name}")
    return 0
