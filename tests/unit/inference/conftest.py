"""Factories for the inference tests: tiny plans and random-weight model folders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from autounet.inference.testing import write_random_model
from autounet.planning.normalization import resampling_components
from autounet.schemas.dataset import DatasetSpec
from autounet.schemas.plans import Plans

LABELS = {"background": 0, "liver": 1, "tumour": 2}


def tiny_configuration(patch: tuple[int, ...], spacing: tuple[float, ...], *, channels: int = 1,
                       **extra: Any) -> dict[str, Any]:
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


def tiny_plans(*, channels: int = 1, transpose: tuple[int, ...] = (0, 1, 2)) -> Plans:
    backward = tuple(int(i) for i in sorted(range(3), key=lambda k: transpose[k]))
    return Plans(
        dataset_name="Dataset900_Tiny", plans_name="nnUNetPlans", planner="test",
        original_median_spacing_after_transp=(1.0, 1.0, 1.0), original_median_shape_after_transp=(20, 20, 20),
        image_reader_writer="simpleitk", transpose_forward=transpose, transpose_backward=backward,
        foreground_intensity_properties_per_channel={},
        configurations={
            "3d_fullres": tiny_configuration((16, 16, 16), (1.0, 1.0, 1.0), channels=channels),
            "3d_lowres": tiny_configuration((16, 16, 16), (2.0, 2.0, 2.0), channels=channels,
                                            next_stage=["3d_cascade_fullres"]),
            "3d_cascade_fullres": {"inherits_from": "3d_fullres", "previous_stage": "3d_lowres"},
            "2d": tiny_configuration((16, 16), (1.0, 1.0), channels=channels),
        })


def tiny_dataset(*, channels: int = 1, file_ending: str = ".nii.gz", labels: dict | None = None,
                 regions_class_order: tuple[int, ...] | None = None) -> DatasetSpec:
    data = {"channel_names": {str(i): f"MR{i}" for i in range(channels)}, "labels": labels or LABELS,
            "numTraining": 1, "file_ending": file_ending}
    if regions_class_order is not None:
        data["regions_class_order"] = list(regions_class_order)
    return DatasetSpec.from_dict(data)


@pytest.fixture
def make_model(tmp_path: Path):
    """``make_model(configuration, folds=(0,), **kw) -> model folder`` with random weights under tmp_path."""

    def make(configuration: str = "3d_fullres", *, folds=(0,), channels: int = 1, transpose=(0, 1, 2),
             dataset: DatasetSpec | None = None, seed: int = 0, **kw: Any) -> Path:
        plans = tiny_plans(channels=channels, transpose=transpose)
        return write_random_model(tmp_path / "results" / "Dataset900_Tiny", plans,
                                  dataset or tiny_dataset(channels=channels), configuration, folds=folds,
                                  seed=seed, **kw)

    return make
