"""``autounet install-model ZIP``: install a model package (autounet's or nnU-Net's) into the workspace."""

from __future__ import annotations

import argparse
from typing import Any

NAME = "install-model"
HELP = "install a model zip (from export-model or nnUNetv2_export_model_to_zip) into the workspace, checked"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``autounet install-model``."""
    parser.add_argument("zip", metavar="ZIP", help="the model package")
    parser.add_argument("--overwrite", action="store_true", help="replace model folders that already exist")
    parser.add_argument("--max-size-gb", type=float, default=16.0,
                        help="refuse packages that expand beyond this many GiB (default 16)")


def run(args: argparse.Namespace, ctx: Any) -> int:
    """Extract safely, verify the model card's hashes, move the model folders into results/."""
    from autounet.inference.package import install_package

    workspace = ctx.workspace()
    result = install_package(args.zip, workspace.results, overwrite=args.overwrite,
                             max_bytes=int(args.max_size_gb * 2**30))
    check = "every file matches model.json" if result.verified else "no model.json (nnU-Net package): not hash-checked"
    print(f"installed {result.dataset_name} ({check}):")
    for d in result.model_dirs:
        print(f"  {d}")
    return 0
