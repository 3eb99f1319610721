"""Model folders with randomly initialised networks, for tests, demos and benchmarks of the inference stage.

``write_random_model`` writes the layout a training run leaves (``plans.json``, ``dataset.json``,
``fold_<k>/checkpoint_final.pth``) with freshly initialised weights (seeded per fold), so prediction can be
exercised end to end without training. ``tiny_plans`` / ``tiny_dataset`` describe a 2-stage U-Net with 16-voxel
patches (``3d_fullres``, ``3d_lowres``, ``3d_cascade_fullres`` and ``2d``) that predicts in milliseconds.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from autounet import networks
from autounet._atomic import write_json_atomic
from autounet.labels import LabelSpec
from autounet.planning.normalization import resampling_components
from autounet.planning.reference import export_plans
from autounet.schemas.checkpoint import InitArgs
from autounet.schemas.dataset import DatasetSpec
from autounet.schemas.plans import Plans, entries
from autounet.training.checkpoint import FINAL, CheckpointRecord, save_checkpoint
from autounet.workspace import (
    DATASET_JSON,
    DEFAULT_PLANS_NAME,
    DEFAULT_TRAINER,
    PLANS_JSON,
    fold_dir_name,
    model_dir_name,
)

TINY_LABELS = {"background": 0, "liver": 1, "tumour": 2}


def tiny_configuration(patch: Sequence[int], spacing: Sequence[float], *, channels: int = 1,
                       **extra: Any) -> dict[str, Any]:
    """A plans configuration dict: a 2-stage plain U-Net (4 and 8 features) on ``patch``."""
    ndim = len(patch)
    res = {k: v.to_dict() for k, v in resampling_components().items()}
    return {
        "data_identifier": f"tiny_{ndim}d", "preprocessor": "default", "batch_size": 2,
        "patch_size": list(patch), "median_image_size_in_voxels": list(patch), "spacing": list(spacing),
        "normalization": [{"name": "zscore", "params": {"use_mask_for_norm": False}}] * channels,
        **res,
        "network": {"name": "plain_unet", "features_per_stage": [4, 8], "kernel_sizes": [[3] * ndim] * 2,
                    "strides": [[1] * ndim, [2] * ndim], "blocks_per_stage": [1, 1],
                    "convs_per_stage_decoder": [1]},
        "batch_dice": False, **extra,
    }


def tiny_plans(*, channels: int = 1, transpose: Sequence[int] = (0, 1, 2),
               spacing: Sequence[float] = (1.0, 1.0, 1.0)) -> Plans:
    """Plans with ``3d_fullres`` (at ``spacing``), ``3d_lowres`` (twice coarser), a cascade and ``2d``."""
    forward = tuple(int(t) for t in transpose)
    backward = tuple(sorted(range(3), key=lambda k: forward[k]))
    sp = [float(spacing[t]) for t in forward]
    return Plans(
        dataset_name="Dataset900_Tiny", plans_name=DEFAULT_PLANS_NAME, planner="test",
        original_median_spacing_after_transp=tuple(sp), original_median_shape_after_transp=(20, 20, 20),
        image_reader_writer="simpleitk", transpose_forward=forward, transpose_backward=backward,
        foreground_intensity_properties_per_channel={},
        configurations=entries({
            "3d_fullres": tiny_configuration((16, 16, 16), sp, channels=channels),
            "3d_lowres": tiny_configuration((16, 16, 16), [2 * s for s in sp], channels=channels,
                                            next_stage=["3d_cascade_fullres"]),
            "3d_cascade_fullres": {"inherits_from": "3d_fullres", "previous_stage": "3d_lowres"},
            "2d": tiny_configuration((16, 16), sp[1:], channels=channels),
        }))


def tiny_dataset(*, channels: int = 1, file_ending: str = ".nii.gz", labels: dict[str, Any] | None = None,
                 regions_class_order: Sequence[int] | None = None) -> DatasetSpec:
    """A ``dataset.json`` with ``channels`` MR channels and the labels background/liver/tumour (or ``labels``)."""
    data: dict[str, Any] = {"channel_names": {str(i): f"MR{i}" for i in range(channels)},
                            "labels": labels or TINY_LABELS, "numTraining": 1, "file_ending": file_ending}
    if regions_class_order is not None:
        data["regions_class_order"] = list(regions_class_order)
    return DatasetSpec.from_dict(data)


def write_random_model(results_dataset_dir: str | os.PathLike[str], plans: Plans, dataset: DatasetSpec,
                       configuration: str, *, folds: Sequence[int | str] = (0,), seed: int = 0,
                       trainer: str = DEFAULT_TRAINER, checkpoint_name: str = FINAL,
                       mirror_axes: Sequence[int] | None = None, mirroring: bool = True,
                       reference_layout: bool = False) -> Path:
    """Write ``<results_dataset_dir>/<Trainer>__<Plans>__<configuration>/`` with random weights; return it.

    ``mirroring=False`` stores ``inference_allowed_mirroring_axes = None`` (no test-time mirroring);
    ``reference_layout`` writes the plans and weight names as ``autounet train`` does (nnU-Net's schema).
    """
    config = plans.configuration(configuration)
    labels = LabelSpec.from_dataset_spec(dataset)
    in_channels = dataset.num_channels + (len(labels.foreground_labels) if config.previous_stage else 0)
    model_dir = Path(results_dataset_dir) / model_dir_name(trainer, plans.plans_name, configuration)
    model_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(model_dir / PLANS_JSON, export_plans(plans) if reference_layout else plans.to_dict())
    write_json_atomic(model_dir / DATASET_JSON, dataset.to_dict())
    axes = None if not mirroring else tuple(mirror_axes) if mirror_axes is not None else tuple(range(config.ndim))
    for i, fold in enumerate(folds):
        torch.manual_seed(seed + i)
        net = networks.build(config.network, in_channels=in_channels, num_outputs=labels.num_outputs,
                             deep_supervision=True)
        fold_dir = model_dir / fold_dir_name(fold)
        fold_dir.mkdir(parents=True, exist_ok=True)
        save_checkpoint(fold_dir / checkpoint_name, CheckpointRecord(
            network_weights=networks.to_reference_state_dict(net.state_dict(), config.network)
            if reference_layout else net.state_dict(),
            init_args=InitArgs(configuration=configuration, fold=fold),
            trainer_name=trainer,
            inference_allowed_mirroring_axes=axes,
        ))
    return model_dir
