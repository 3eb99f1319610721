"""``autounet train -d DATASET -c CONFIG -f FOLD``: train one fold, validate it, write a cascade's next-stage inputs.

``autounet train DATASET CONFIG FOLD`` (the reference's positional order) is the same command.
"""

from __future__ import annotations

import argparse
import os
from typing import Any

from autounet.cli import _options, _settings

NAME = "train"
HELP = "train one fold of one configuration, then validate it (the recipe's settings are flags)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``autounet train``: the fold, what to do with it, then the generated training settings."""
    _options.dataset(parser)
    _options.configuration(parser, positional=True)
    _options.fold(parser, positional=True)
    _options.plans(parser)
    _options.budget(parser)
    parser.add_argument("--time-budget", metavar="DURATION",
                        help="train (and validate) within DURATION, e.g. 40m, 8h, 1h30m: epochs, iterations and "
                             "validation batches are derived from iteration times measured on this machine")
    parser.add_argument("--resume", action="store_true", help="continue from the fold's latest checkpoint")
    parser.add_argument("--continue-epochs", type=int, default=0, metavar="N",
                        help="extend a finished (or interrupted) run by N epochs")
    parser.add_argument("--overwrite", action="store_true", help="start over even if checkpoints exist")
    parser.add_argument("--val-only", action="store_true",
                        help="skip training: (re)run the final validation of a trained fold")
    parser.add_argument("--no-val", dest="validate", action="store_false",
                        help="skip the final validation (predicting the fold's validation cases)")
    parser.add_argument("--save-probabilities", action="store_true",
                        help="keep the validation probabilities (needed to ensemble in find-best)")
    parser.add_argument("--val-checkpoint", choices=("final", "best"), default="final",
                        help="checkpoint used for the final validation (default final)")
    _options.workers(parser, default=1, help="processes evaluating the final validation (default 1)")
    _options.json_switch(parser, help="print the fold folder, the last epoch and the validation Dice as JSON")
    _settings.add_training_flags(parser)


def job_from_args(args: argparse.Namespace, workspace: Any, *, progress: bool) -> tuple[Any, Any]:
    """The :class:`~autounet.pipeline.training.TrainingJob` and runtime settings these flags ask for (``progress``:
    bars, only on a terminal; otherwise the log gets a line at least every 30 s)."""
    from autounet.pipeline import TrainingJob, ValidationOptions
    from autounet.pipeline.training import parse_fold
    from autounet.planning.store import read_plans_file
    from autounet.training.time_budget import resolve_config

    dataset = workspace.find_dataset(args.dataset)
    plans = read_plans_file(workspace.plans_file(dataset, args.plans))
    settings = {"progress": progress, **_settings.training_settings(args)}
    config, seconds = resolve_config(args.budget, args.time_budget, plans.configuration(args.configuration).ndim,
                                     settings)
    validation = ValidationOptions(checkpoint=args.val_checkpoint, save_probabilities=args.save_probabilities,
                                   workers=args.workers) if (args.validate or args.val_only) else None
    job = TrainingJob(workspace=workspace, dataset=dataset, configuration=args.configuration,
                      fold=parse_fold(args.fold), recipe=config.recipe, plans_name=args.plans,
                      resume="yes" if args.resume else "no", continue_epochs=args.continue_epochs,
                      overwrite=args.overwrite, train=not args.val_only, validation=validation,
                      time_budget=seconds)
    return job, config.runtime


def run(args: argparse.Namespace, ctx: Any) -> int:
    """Train and validate; print the fold folder (or, with ``--json``, the fold folder and final values)."""
    import json

    from autounet.pipeline import run_training

    job, runtime = job_from_args(args, ctx.workspace(), progress=ctx.progress)
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1  # launched by torchrun
    main_process = int(os.environ.get("RANK", "0")) == 0
    result = run_training(job, runtime=runtime, distributed=distributed, main_process=main_process)
    if not main_process:
        return 0
    if result.validation_dice is not None and not args.json:
        print(f"validation of fold {job.fold}: mean foreground Dice {result.validation_dice:.4f}")
    if result.next_stage is not None and not args.json:
        print(f"next-stage inputs: {len(result.next_stage.written)} written, {len(result.next_stage.skipped)} up to "
              "date")
    if args.json:
        from autounet.schemas.training_log import read_training_log
        from autounet.workspace import TRAINING_LOG_JSONL

        records = read_training_log(result.fold_dir / TRAINING_LOG_JSONL)
        print(json.dumps({"fold_dir": str(result.fold_dir), "last_epoch": records[-1].to_dict() if records else None,
                          "validation_dice": result.validation_dice}, allow_nan=True))
    else:
        print(result.fold_dir)
    return 0
