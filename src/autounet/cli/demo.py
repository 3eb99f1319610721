"""``autounet demo``: the main job on a built-in synthetic dataset (or ``--dataset PATH``), no download needed.

The demo is a list of steps (:data:`STEPS`) run in order on a shared :class:`DemoState`; later stages (plan,
preprocess, train, predict, evaluate) are added by appending steps.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autounet.cli import _options

NAME = "demo"
#: the demo's training schedule: the short budget, cut to fit the whole demo in a few minutes on 2 CPU cores
DEMO_CONFIGURATIONS = ("2d",)
DEMO_EPOCHS = 4
DEMO_ITERATIONS = 20
DEMO_VAL_ITERATIONS = 3
DEMO_BATCH_SIZE = 4
HELP = "generate (or import) a dataset into the workspace and run the pipeline on it"


@dataclass
class DemoState:
    """What the steps share: the parsed arguments, the workspace, the dataset name and per-step results."""

    args: argparse.Namespace
    workspace: Any
    dataset_name: str | None = None
    results: dict[str, Any] = field(default_factory=dict)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``autounet demo``."""
    parser.add_argument("--source", metavar="PATH", dest="source",
                        help="real data instead of the synthetic set: a raw dataset folder (with dataset.json) or a "
                             "folder with images/ and labels/ sub-folders")
    parser.add_argument("--cases", type=int, default=15, help="synthetic cases (default 15)")
    parser.add_argument("--shape", type=int, nargs=3, default=(20, 48, 48), metavar=("Z", "Y", "X"),
                        help="synthetic volume shape (default 20 48 48)")
    parser.add_argument("--spacing", type=float, nargs=3, default=(3.0, 1.0, 1.0), metavar=("Z", "Y", "X"),
                        help="synthetic voxel spacing in mm (default 3 1 1: anisotropic)")
    parser.add_argument("--channels", type=int, default=1, help="synthetic input channels (default 1)")
    parser.add_argument("--seed", type=int, default=0, help="synthetic data seed (default 0)")
    parser.add_argument("--id", type=int, dest="dataset_id", help="dataset id (default 998 synthetic, 999 imported)")
    _options.deprecated_alias(parser, "--dataset", "--source", dest="source", metavar="PATH")
    _options.workers(parser, default=2)
    parser.add_argument("--clean", action="store_true", help="regenerate/re-import the demo dataset")
    _options.configurations(parser, default=DEMO_CONFIGURATIONS,
                            help="configurations to train (default: 2d, the cheapest on a CPU)")
    _options.folds(parser)
    parser.add_argument("--epochs", type=int, default=DEMO_EPOCHS, help=f"epochs per fold (default {DEMO_EPOCHS})")
    parser.add_argument("--iters-per-epoch", type=int, default=DEMO_ITERATIONS, dest="iterations_per_epoch",
                        help=f"training iterations per epoch (default {DEMO_ITERATIONS})")
    _options.devices(parser)


def step_dataset(state: DemoState) -> str:
    """Generate the synthetic dataset, or bring ``--source`` into the workspace (reused when present)."""
    from autounet.testing import prepare_demo_dataset

    args = state.args
    name, action = prepare_demo_dataset(state.workspace, args.source, dataset_id=args.dataset_id, n_cases=args.cases,
                               shape=tuple(args.shape), spacing=tuple(args.spacing), n_channels=args.channels,
                               seed=args.seed, clean=args.clean)
    state.dataset_name = name
    return f"{action} {state.workspace.raw_dataset(name)}"


def step_verify(state: DemoState) -> str:
    """Verify the dataset; stop the demo on problems."""
    from autounet.dataset import verify
    from autounet.errors import DatasetError

    report = verify(state.workspace.raw_dataset(state.dataset_name or ""), workers=state.args.workers,
                    progress=state.results.get("progress", False))
    state.results["verify"] = report
    if not report.ok:
        msg = f"verification failed:\n{report.format()}"
        raise DatasetError(msg)
    return f"{report.n_cases} cases OK ({report.seconds:.1f} s)"


def step_run(state: DemoState) -> str:
    """``autounet run`` with the short budget: plan, preprocess, train every fold, select, report."""
    from autounet.pipeline import RunOptions, format_summary, run

    args = state.args
    overrides = {"epochs": args.epochs, "iterations_per_epoch": args.iterations_per_epoch,
                 "val_iterations": DEMO_VAL_ITERATIONS, "batch_size": DEMO_BATCH_SIZE}
    options = RunOptions(configurations=tuple(args.configurations), folds=tuple(args.folds), budget="short",
                         devices=tuple(args.devices), workers=args.workers, training_overrides=overrides,
                         progress=state.results.get("progress", False))
    summary = run(state.workspace, state.dataset_name or "", options=options,
                  on_step=lambda step, message: print(f"      [{step}] {message}", flush=True))
    state.results["run"] = summary
    return format_summary(summary).replace("\n", "\n      ")


#: the demo's steps, in order: (name, function returning a one-line summary)
STEPS: list[tuple[str, Callable[[DemoState], str]]] = [
    ("dataset", step_dataset),
    ("verify", step_verify),
    ("run", step_run),
]


def run(args: argparse.Namespace, ctx: Any) -> int:
    """Run every step, printing one line per step."""
    state = DemoState(args=args, workspace=ctx.workspace(), results={"progress": ctx.progress})
    for i, (name, step) in enumerate(STEPS, 1):
        print(f"[{i}/{len(STEPS)}] {name}", flush=True)
        print(f"      {step(state)}", flush=True)
    print(f"demo finished: dataset {state.dataset_name} in {Path(state.workspace.raw)}")
    return 0
