"""``autounet train DATASET CONFIG FOLD``: train one fold with the reference recipe or a shorter budget."""

from __future__ import annotations

import argparse
import os
from typing import Any

NAME = "train"
HELP = "train one fold of one configuration (reference recipe; flags for what users change)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``autounet train``."""
    parser.add_argument("dataset", metavar="DATASET", help="dataset id (4) or name (Dataset004_Hippocampus)")
    parser.add_argument("configuration", metavar="CONFIG", help="configuration (2d, 3d_fullres, 3d_lowres, ...)")
    parser.add_argument("fold", metavar="FOLD", help="fold 0-4 (higher: random 80:20 split) or 'all'")
    parser.add_argument("--budget", choices=("reference", "short"), default="reference",
                        help="schedule preset: reference (1000 x 250 iterations) or short (= --time-budget 10m with "
                             "the CPU recipe on a CPU); other flags override it")
    parser.add_argument("--time-budget", metavar="DURATION",
                        help="train (and validate) within DURATION, e.g. 40m, 8h, 1h30m: epochs, iterations and "
                             "validation batches are derived from iteration times measured on this machine")
    parser.add_argument("--epochs", type=int, help="number of epochs")
    parser.add_argument("--iters-per-epoch", type=int, dest="iterations_per_epoch", help="training batches per epoch")
    parser.add_argument("--val-iters", type=int, dest="val_iterations", help="validation batches per epoch")
    parser.add_argument("--lr", type=float, dest="initial_lr", help="initial learning rate (poly schedule)")
    parser.add_argument("--batch-size", type=int, help="total batch size (default: the plans')")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda", "mps"), help="training device (default auto)")
    parser.add_argument("--plans", default="nnUNetPlans", help="plans identifier (default nnUNetPlans)")
    parser.add_argument("--pretrained", metavar="CKPT", help="initialise from these weights (fresh start only)")
    parser.add_argument("--seed", type=int, help="base seed (default: random, stored for resume)")
    parser.add_argument("--deterministic", action="store_true", default=None,
                        help="deterministic algorithms (bit-identical reruns on CPU)")
    parser.add_argument("--no-compile", dest="compile", action="store_false", default=None,
                        help="do not torch.compile the network (compile is only used on CUDA)")
    parser.add_argument("--no-amp", dest="amp", action="store_false", default=None,
                        help="no mixed precision on CUDA")
    parser.add_argument("--channels-last", action="store_true", default=None, help="channels-last memory format")
    parser.add_argument("--resume", action="store_true", help="continue from the fold's latest checkpoint")
    parser.add_argument("--continue-epochs", type=int, default=0, metavar="N",
                        help="extend a finished (or interrupted) run by N epochs")
    parser.add_argument("--checkpoint-every", type=int, help="write checkpoint_latest every N epochs (default 1)")
    parser.add_argument("--augmentation", metavar="PRESET|FILE", help="augmentation preset name or JSON file")
    parser.add_argument("-j", "--workers", type=int, help="patch-reading loader threads (default 2)")
    parser.add_argument("--threads", type=int, help="torch CPU threads (default: torch's)")
    parser.add_argument("--trainer-name", help="first part of the model folder name (default nnUNetTrainer)")
    parser.add_argument("--overwrite", action="store_true", help="start over even if checkpoints exist")
    parser.add_argument("--json", action="store_true", help="print the result folder and final values as JSON")
    parser.add_argument("--val-only", action="store_true",
                        help="skip training: (re)run the final validation of a trained fold")
    parser.add_argument("--no-val", dest="validate", action="store_false",
                        help="skip the final validation (predicting the fold's validation cases)")
    parser.add_argument("--save-probabilities", action="store_true",
                        help="keep the validation probabilities (needed to ensemble in find-best)")
    parser.add_argument("--val-checkpoint", choices=("final", "best"), default="final",
                        help="checkpoint used for the final validation (default final)")


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    names = ("epochs", "iterations_per_epoch", "val_iterations", "initial_lr", "batch_size", "device", "pretrained",
             "seed", "deterministic", "compile", "amp", "channels_last", "checkpoint_every", "augmentation",
             "workers", "threads", "trainer_name")
    return {n: getattr(args, n) for n in names if getattr(args, n) is not None}


def _config_and_budget(args: argparse.Namespace, ndim: int) -> tuple[Any, float | None]:
    """The TrainingConfig and the time budget in seconds (``--time-budget``, or ``--budget short``), if any."""
    from autounet.training.time_budget import resolve_config

    return resolve_config(args.budget, args.time_budget, ndim, _overrides(args))


def _validate(args: argparse.Namespace, ctx: Any, workspace: Any, dataset: str, fold: int, config: Any,
              plans: Any) -> None:
    """Final validation through the inference pipeline, and the next stage's inputs for a cascade's lowres."""
    from autounet.pipeline import ValidationOptions, validate_fold
    from autounet.pipeline.cascade import write_next_stage_predictions

    options = ValidationOptions(checkpoint=args.val_checkpoint, save_probabilities=args.save_probabilities,
                                device=config.device, progress=ctx.progress)
    summary = validate_fold(workspace, dataset, args.configuration, fold, plans_name=args.plans,
                            trainer=config.trainer_name, options=options)
    print(f"validation of fold {fold}: mean foreground Dice {summary.score:.4f}")
    if plans.configuration(args.configuration).next_stage:
        report = write_next_stage_predictions(workspace, dataset, args.configuration, fold, plans_name=args.plans,
                                              trainer=config.trainer_name, device=config.device)
        print(f"next-stage inputs: {len(report.written)} written, {len(report.skipped)} up to date")


def run(args: argparse.Namespace, ctx: Any) -> int:
    """Train, then print the fold folder (and the last epoch's values with ``--json``)."""
    import json

    from autounet.schemas.plans import load_plans
    from autounet.training import train
    from autounet.workspace import fold_dir_name

    workspace = ctx.workspace()
    dataset = workspace.find_dataset(args.dataset)
    plans = load_plans(workspace.plans_file(dataset, args.plans))
    config, time_budget = _config_and_budget(args, plans.configuration(args.configuration).ndim)
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1  # launched by torchrun
    if args.fold != "all" and not args.fold.isdigit():
        from autounet.errors import UsageError

        raise UsageError(f"FOLD must be a non-negative integer or 'all', got {args.fold!r}.")
    fold = args.fold if args.fold == "all" else int(args.fold)
    if args.val_only:
        fold_dir = workspace.model_dir(dataset, args.configuration, plans_name=args.plans,
                                       trainer=config.trainer_name) / fold_dir_name(fold)
    else:
        fold_dir = train(workspace, dataset, args.configuration, fold, config=config, plans_name=args.plans,
                         resume=args.resume, continue_epochs=args.continue_epochs, overwrite=args.overwrite,
                         distributed=distributed, progress=ctx.progress, time_budget=time_budget,
                         budget_final_validation=args.validate)
    if int(os.environ.get("RANK", "0")) != 0:
        return 0
    if (args.validate or args.val_only) and fold != "all":
        _validate(args, ctx, workspace, dataset, fold, config, plans)
    if args.json:
        lines = (fold_dir / "training_log.jsonl").read_text(encoding="utf-8").splitlines() if (
            fold_dir / "training_log.jsonl").is_file() else []
        last = json.loads(lines[-1]) if lines else None
        print(json.dumps({"fold_dir": str(fold_dir), "last_epoch": last}, allow_nan=True))
    else:
        print(fold_dir)
    return 0
