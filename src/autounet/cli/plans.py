"""``autounet plans import|export``: convert between autounet plans and the reference's plans JSON."""

from __future__ import annotations

import argparse
from typing import Any

from autounet.cli import _options

NAME = "plans"
HELP = "import a reference (nnU-Net v2) plans file, or export plans in the reference's format"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Sub-actions ``import`` and ``export`` (the global flags may also follow the action)."""
    from autounet.cli import add_global_flags

    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    imp = sub.add_parser("import", help="import a plans JSON (reference or autounet) into the workspace")
    add_global_flags(imp, suppress=True)
    imp.add_argument("file", metavar="FILE", help="plans JSON, e.g. nnUNetResEncUNetLPlans.json")
    _options.dataset(imp, positional=False, required=False,
                     help="target dataset (id or name; default: the file's dataset_name)")
    _options.plans(imp, default=None, dest="plans_name", help="store under this plans name (default: the file's)")
    imp.add_argument("--overwrite", action="store_true", help="replace an existing plans file of that name")
    exp = sub.add_parser("export", help="write a dataset's plans in the reference's format")
    add_global_flags(exp, suppress=True)
    _options.dataset(exp, help="dataset id or name")
    _options.plans(exp)
    exp.add_argument("-o", "--output", required=True, metavar="FILE", help="output JSON file")


def run(args: argparse.Namespace, ctx: Any) -> int:
    """Dispatch to import or export."""
    return _import(args, ctx) if args.action == "import" else _export(args, ctx)


def _import(args: argparse.Namespace, ctx: Any) -> int:
    import dataclasses

    from autounet.errors import UsageError
    from autounet.planning.store import read_plans_file
    from autounet.schemas.plans import save_plans

    workspace = ctx.workspace()
    plans = read_plans_file(args.file)
    dataset = workspace.find_dataset(args.dataset) if args.dataset else plans.dataset_name
    plans = dataclasses.replace(plans, dataset_name=dataset, plans_name=args.plans_name or plans.plans_name)
    target = workspace.plans_file(dataset, plans.plans_name)
    if target.exists() and not args.overwrite:
        msg = f"{target} exists; pass --overwrite to replace it or --plans to store under another name."
        raise UsageError(msg)
    save_plans(target, plans)
    print(f"Imported {args.file} -> {target} (configurations: {', '.join(plans.configuration_names())})")
    return 0


def _export(args: argparse.Namespace, ctx: Any) -> int:
    from autounet.planning.store import export_reference_file, read_plans_file

    workspace = ctx.workspace()
    dataset = workspace.find_dataset(args.dataset)
    plans = read_plans_file(workspace.plans_file(dataset, args.plans))
    export_reference_file(plans, args.output)
    print(f"Exported {workspace.plans_file(dataset, args.plans)} -> {args.output} (reference format)")
    return 0
