"""``autounet plan DATASET``: plan the experiment (target spacing, patch, network, batch) for a dataset."""

from __future__ import annotations

import argparse
from typing import Any

from autounet.cli import _options

NAME = "plan"
HELP = "plan configurations (2d, 3d_fullres, 3d_lowres, cascade) from the dataset fingerprint"
PRESET_CHOICES = ("default", "resenc", "resenc-m", "resenc-l", "resenc-xl")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``autounet plan``."""
    from autounet.cli.fingerprint import default_workers

    _options.dataset(parser)
    parser.add_argument("--preset", default="default", choices=PRESET_CHOICES,
                        help="planner preset: default (PlainConvUNet, 8 GB), resenc-m (~9-11 GB), resenc-l (24 GB, "
                             "recommended), resenc-xl (40 GB)")
    parser.add_argument("--gpu-memory", type=float, metavar="GB", dest="gpu_memory",
                        help="GPU memory target in GB (default: the preset's); needs --plans")
    _options.plans(parser, default=None, dest="plans_name", help="plans name (default: the preset's, e.g. nnUNetPlans)")
    parser.add_argument("--target-spacing", type=float, nargs=3, metavar=("S0", "S1", "S2"),
                        help="3d_fullres target spacing in array axis order (also moves 2d/lowres); needs "
                             "--plans")
    parser.add_argument("-c", "--configurations", nargs="+", metavar="CONFIG",
                        help="only (re)plan these configurations; others in an existing plans file are kept")
    parser.add_argument("--explain", action="store_true", help="print why each value was chosen")
    parser.add_argument("--clean", action="store_true", help="recompute the fingerprint even if it is up to date")
    parser.add_argument("-j", "--workers", type=int, default=None,
                        help=f"fingerprint worker processes (default {default_workers()})")
    _options.json_switch(parser, help="print the written plans as JSON")
    parser.add_argument("--preprocess", action="store_true",
                        help="then preprocess the planned configurations (as `autounet preprocess`)")


def run(args: argparse.Namespace, ctx: Any) -> int:
    """Plan, write the plans file, print a summary (and the explanation with ``--explain``)."""
    import json

    from autounet.cli.fingerprint import default_workers
    from autounet.planning import format_explanation
    from autounet.planning.store import plan_dataset

    workspace = ctx.workspace()
    result, path = plan_dataset(workspace, args.dataset, preset=args.preset, gpu_memory_gb=args.gpu_memory,
                                plans_name=args.plans_name, target_spacing=args.target_spacing,
                                configurations=args.configurations, clean=args.clean,
                                workers=args.workers or default_workers(), progress=ctx.progress)
    if args.preprocess:
        from autounet.cli.preprocess import preprocess_dataset
        preprocess_dataset(ctx, result.plans.dataset_name, result.plans.plans_name, args.configurations,
                           workers=args.workers, clean=False, echo=not args.json)
    if args.json:
        print(json.dumps(result.plans.to_dict(), indent=2))
        return 0
    if args.explain:
        print(format_explanation(result.explanation))
        print()
    print(f"Plans written to {path}")
    print(summary_table(result.plans))
    return 0


def summary_table(plans: Any) -> str:
    """One line per configuration: patch, batch, spacing, stages."""
    rows = [("configuration", "patch size", "batch", "spacing", "stages")]
    for name in plans.configuration_names():
        c = plans.configuration(name)
        rows.append((name, "x".join(map(str, c.patch_size)), str(c.batch_size),
                     ", ".join(f"{s:.4g}" for s in c.spacing), str(c.network.n_stages)))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "\n".join("  " + "  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)) for r in rows)
