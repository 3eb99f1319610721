"""Model folders with randomly initialised networks, for tests, demos and benchmarks of the inference stage.

``write_random_model`` writes the layout a training run leaves (``plans.json``, ``dataset.json``,
``fold_<k>/checkpoint_final.pth``) with freshly initialised weights (seeded per fold), so prediction can be
exercised end to end without training.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import torch

from autounet import networks
from autounet._atomic import write_json_atomic
from autounet.labels import LabelSpec
from autounet.schemas.dataset import DatasetSpec
from autounet.schemas.plans import Plans
from autounet.training.checkpoint import FINAL, save_checkpoint
from autounet.workspace import DATASET_JSON, DEFAULT_TRAINER, PLANS_JSON, fold_dir_name, model_dir_name


def write_random_model(results_dataset_dir: str | os.PathLike[str], plans: Plans, dataset: DatasetSpec,
                       configuration: str, *, folds: Sequence[int | str] = (0,), seed: int = 0,
                       trainer: str = DEFAULT_TRAINER, checkpoint_name: str = FINAL,
                       mirror_axes: Sequence[int] | None = None) -> Path:
    """Write ``<results_dataset_dir>/<Trainer>__<Plans>__<configuration>/`` with random weights; return it."""
    config = plans.configuration(configuration)
    labels = LabelSpec.from_dataset_spec(dataset)
    in_channels = dataset.num_channels + (len(labels.foreground_labels) if config.previous_stage else 0)
    model_dir = Path(results_dataset_dir) / model_dir_name(trainer, plans.plans_name, configuration)
    model_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(model_dir / PLANS_JSON, plans.to_dict())
    write_json_atomic(model_dir / DATASET_JSON, dataset.to_dict())
    axes = tuple(mirror_axes) if mirror_axes is not None else tuple(range(config.ndim))
    for i, fold in enumerate(folds):
        torch.manual_seed(seed + i)
        net = networks.build(config.network, in_channels=in_channels, num_outputs=labels.num_outputs,
                             deep_supervision=True)
        fold_dir = model_dir / fold_dir_name(fold)
        fold_dir.mkdir(parents=True, exist_ok=True)
        save_checkpoint(fold_dir / checkpoint_name, {
            "network_weights": net.state_dict(),
            "init_args": {"configuration": configuration, "fold": fold},
            "trainer_name": trainer,
            "inference_allowed_mirroring_axes": axes,
        })
    return model_dir
