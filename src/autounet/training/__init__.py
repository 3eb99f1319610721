"""Training: the reference recipe as a configurable loop (no trainer subclasses).

Entry point::

    from autounet.training import train, training_config
    config = training_config("short", spatial_dims=3, seed=0)          # recipe + runtime settings
    fold_dir = train(workspace, "Dataset004_Hippocampus", "3d_fullres", 0, config=config)

The whole job of a fold (train, final validation, the cascade's next-stage inputs) is
:func:`autounet.pipeline.run_training`, which the CLI, the API and ``autounet run`` call.

Modules: :mod:`~autounet.training.sampler` (oversampling and patch rules), :mod:`~autounet.training.data` (patch
reading threads), :mod:`~autounet.training.loop` (epochs, validation pseudo-Dice, interruption),
:mod:`~autounet.training.checkpoint`, :mod:`~autounet.training.logging`, :mod:`~autounet.training.ddp`,
:mod:`~autounet.training.splits`, :mod:`~autounet.training.build` (assembly from a workspace),
:mod:`~autounet.training.components` (optimisers, schedules and losses by registered name).
"""

from __future__ import annotations

from autounet.schemas.training import (
    RuntimeSettings,
    TrainingConfig,
    TrainingRecipe,
    load_training_config,
    save_training_config,
    training_config,
)
from autounet.training.build import train
from autounet.training.checkpoint import BEST, FINAL, LATEST, load_checkpoint
from autounet.training.loop import TrainingInterrupted
from autounet.training.splits import fold_cases, make_splits

__all__ = ["BEST", "FINAL", "LATEST", "RuntimeSettings", "TrainingConfig", "TrainingInterrupted", "TrainingRecipe",
           "fold_cases", "load_checkpoint", "load_training_config", "make_splits", "save_training_config", "train",
           "training_config"]
