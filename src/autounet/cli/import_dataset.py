"""``autounet import``: build a raw dataset from a folder of images and a folder of labels."""

from __future__ import annotations

import argparse
from typing import Any

from autounet.errors import UsageError

NAME = "import"
HELP = "create raw/DatasetXXX_Name from plain image and label folders (matched by case id)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``autounet import``."""
    parser.add_argument("--images", metavar="DIR", action="append", required=True,
                        help="images folder (CASE.ext or CASE_XXXX.ext files); repeat once per channel for "
                             "one folder per channel")
    parser.add_argument("--labels", metavar="DIR", required=True, help="labels folder (CASE.ext files)")
    parser.add_argument("--id", type=int, required=True, dest="dataset_id", help="dataset id (0-999)")
    parser.add_argument("--name", required=True, help="dataset name (DatasetXXX_NAME)")
    parser.add_argument("--channel", action="append", default=[], metavar="NAME",
                        help="channel name, in order (repeat: --channel T1 --channel T2); CT selects CT "
                             "normalization")
    parser.add_argument("--label", action="append", default=[], metavar="NAME=VALUE",
                        help="label, e.g. background=0 (repeat); a region: whole=1,2,3")
    parser.add_argument("--spec", metavar="JSON", help="JSON file with dataset.json keys (channel_names, labels, "
                                                       "regions_class_order, description, ...); flags override it")
    parser.add_argument("--file-ending", help="file ending of the new dataset (default: the sources'; else .nii.gz)")
    parser.add_argument("--strict", action="store_true", help="refuse when any file is unpaired")
    parser.add_argument("--link", action="store_true", help="hard-link files instead of copying them")
    parser.add_argument("--clean", action="store_true", help="replace an existing dataset folder of that name")


def parse_labels(items: list[str]) -> dict[str, int | list[int]]:
    """``["background=0", "whole=1,2"]`` -> ``{"background": 0, "whole": [1, 2]}``."""
    labels: dict[str, int | list[int]] = {}
    for item in items:
        name, sep, value = item.partition("=")
        try:
            values = [int(v) for v in value.split(",")]
        except ValueError:
            values = []
        if not sep or not name or not values:
            msg = f"--label {item!r}: expected NAME=VALUE (e.g. background=0) or NAME=V1,V2 for a region."
            raise UsageError(msg)
        labels[name] = values[0] if len(values) == 1 else values
    return labels


def run(args: argparse.Namespace, ctx: Any) -> int:
    """Import, then list the cases imported and the files skipped."""
    from pathlib import Path

    from autounet.dataset import import_folders
    from autounet.schemas._base import read_json

    spec = read_json(args.spec, what="--spec JSON") if args.spec else None
    result = import_folders([Path(p) for p in args.images], Path(args.labels), workspace=ctx.workspace(),
                            dataset_id=args.dataset_id, name=args.name, channels=args.channel,
                            label_values=parse_labels(args.label), spec=spec, file_ending=args.file_ending,
                            strict=args.strict, link=args.link, clean=args.clean)
    if result.unpaired:
        print(f"skipped {len(result.unpaired)} unpaired file(s):")
        for item in result.unpaired:
            print(f"  {item.path}: {item.reason}")
    how = "linked" if args.link else "copied"
    extra = f", {result.converted} file(s) converted" if result.converted else ""
    print(f"imported {len(result.cases)} cases into {result.root} ({how}{extra})")
    print(f"next: autounet verify {result.dataset_name}")
    return 0
