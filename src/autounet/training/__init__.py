"""Training: the reference recipe as a configurable loop (no trainer subclasses).

Entry point::

    from autounet.training import TrainingConfig, train
    fold_dir = train(workspace, "Dataset004_Hippocampus", "3d_fullres", 0, config=TrainingConfig.short())

Modules: :mod:`~autounet.training.sampler` (oversampling and patch rules), :mod:`~autounet.training.data` (patch
reading threads), :mod:`~autounet.training.loop` (epochs, validation pseudo-Dice, interruption),
:mod:`~autounet.training.checkpoint`, :mod:`~autounet.training.logging`, :mod:`~autounet.training.ddp`,
:mod:`~autounet.training.splits`, :mod:`~autounet.training.build` (assembly from a workspace); the loss and
learning-rate schedule live in ``losses`` and ``schedules``.
"""

from __future__ import annotations

from autounet.schemas.training import TrainingConfig, load_training_config, save_training_config
from autounet.training.build import train
from autounet.training.checkpoint import BEST, FINAL, LATEST, load_checkpoint
from autounet.training.loop import TrainingInterrupted
from autounet.training.splits import fold_cases, make_splits

__all__ = ["BEST", "FINAL", "LATEST", "TrainingConfig", "TrainingInterrupted", "fold_cases", "load_checkpoint",
           "load_training_config", "make_splits", "save_training_config", "train"]
