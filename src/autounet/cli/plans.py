"""``autounet plans import|export``: convert between autounet plans and the reference's plans JSON."""

from __future__ import annotations

import argparse
from typing import Any

from autounet.workspace import DEFAULT_PLANS_NAME

NAME = "plans"
HELP = "import a reference (nnU-Net v2) plans file, or export plans in the reference's format"


def _accept_common_flags(parser: argparse.ArgumentParser) -> None:
    """Let the global flags also follow the action (``autounet plans export 4 --workspace W``); SUPPRESS keeps a
    value given before the action from being reset by the action parser's defaults."""
    parser.add_argument("--workspace", metavar="DIR", default=argparse.SUPPRESS, help="workspace root")
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show full tracebacks")
    parser.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS, help="only warnings and errors")
    parser.add_argument("--no-progress", dest="progress", action="store_false", default=argparse.SUPPRESS,
                        help="no progress bars")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Sub-actions ``import`` and ``export``."""
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    imp = sub.add_parser("import", help="import a plans JSON (reference or autounet) into the workspace")
    _accept_common_flags(imp)
    imp.add_argument("file", metavar="FILE", help="plans JSON, e.g. nnUNetResEncUNetLPlans.json")
    imp.add_argument("-d", "--dataset", help="target dataset (id or name; default: the file's dataset_name)")
    imp.add_argument("--plans-name", metavar="NAME", help="store under this plans name (default: the file's)")
    imp.add_argument("--overwrite", action="store_true", help="replace an existing plans file of that name")
    exp = sub.add_parser("export", help="write a dataset's plans in the reference's format")
    _accept_common_flags(exp)
    exp.add_argument("dataset", metavar="DATASET", help="dataset id or name")
    exp.add_argument("--plans", default=DEFAULT_PLANS_NAME, help=f"plans name (default {DEFAULT_PLANS_NAME})")
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
        msg = f"{target} exists; pass --overwrite to replace it or --plans-name to store under another name."
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
