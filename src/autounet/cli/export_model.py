"""``autounet export-model``: pack trained models into a zip (nnU-Net's layout + ``model.json``) or ONNX."""

from __future__ import annotations

import argparse
import json
from typing import Any

NAME = "export-model"
HELP = "pack a dataset's trained models into a shareable zip (nnU-Net's layout + model card), or export ONNX"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``autounet export-model``."""
    parser.add_argument("-d", "--dataset", required=True, help="dataset id (4) or name in the workspace")
    parser.add_argument("-o", "--output", required=True, metavar="FILE", help="the zip (or .onnx) file to write")
    parser.add_argument("-c", "--configurations", nargs="+", default=None, metavar="CONFIG",
                        help="configurations to pack (default: every trained one; ONNX: exactly one)")
    parser.add_argument("-f", "--folds", nargs="+", default=None,
                        help="folds to pack (default: every fold with the checkpoint)")
    parser.add_argument("--trainer", default="nnUNetTrainer", help="trainer name of the model folders")
    parser.add_argument("--plans", default="nnUNetPlans", help="plans identifier (default nnUNetPlans)")
    parser.add_argument("--checkpoints", nargs="+", choices=("final", "best"), default=["final"],
                        help="checkpoints of each fold to pack (default final)")
    parser.add_argument("--format", choices=("zip", "onnx"), default="zip",
                        help="zip (default): a model package; onnx: the network of one configuration")
    parser.add_argument("--json", action="store_true", help="print the model card as JSON")


def run(args: argparse.Namespace, ctx: Any) -> int:
    """Write the package (or ONNX file) and summarise it."""
    from pathlib import Path

    from autounet.errors import UsageError

    workspace = ctx.workspace()
    dataset = workspace.find_dataset(args.dataset)
    if args.format == "onnx":
        if not args.configurations or len(args.configurations) != 1:
            raise UsageError("--format onnx exports one configuration: give -c CONFIG.")
        try:
            from autounet.inference.onnx import export_onnx
        except ImportError as exc:
            raise UsageError(f"ONNX export is not available in this installation ({exc}); use --format zip.") \
                from exc
        model_dir = workspace.model_dir(dataset, args.configurations[0], plans_name=args.plans, trainer=args.trainer)
        from autounet.inference.model import checkpoint_file_name

        out = export_onnx(model_dir, Path(args.output), folds=args.folds,
                          checkpoint_name=checkpoint_file_name(args.checkpoints[0]))
        print(f"ONNX model written to {out}")
        return 0

    from autounet.inference.package import export_package

    card = export_package(workspace.results_dataset(dataset), args.output, configurations=args.configurations,
                          trainer=args.trainer, plans_name=args.plans, folds=args.folds,
                          checkpoints=args.checkpoints)
    if args.json:
        print(json.dumps(card.to_dict(), indent=2))
        return 0
    size = Path(args.output).stat().st_size
    print(f"{args.output}: {card.dataset_name}, {len(card.files) + 1} files, {size / 2**20:.1f} MiB")
    for m in card.models:
        cv = ", ".join(f"{k} {v:.4f}" for k, v in m.cross_validation.items()) or "no validation summary"
        print(f"  {m.folder}: folds {', '.join(m.folds)}; spacing {', '.join(f'{s:g}' for s in m.spacing)}; "
              f"cross-validation {cv}")
    return 0
