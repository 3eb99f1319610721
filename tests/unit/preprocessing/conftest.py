"""Shared helpers for the preprocessing tests: a hand-built plans record and tiny raw datasets."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from autounet.schemas.plans import Plans

NETWORK = {
    "name": "plain_unet", "features_per_stage": [8, 16], "kernel_sizes": [[3, 3, 3], [3, 3, 3]],
    "strides": [[1, 1, 1], [2, 2, 2]], "blocks_per_stage": [2, 2], "convs_per_stage_decoder": [2],
}
NETWORK_2D = {**NETWORK, "kernel_sizes": [[3, 3], [3, 3]], "strides": [[1, 1], [2, 2]]}


def configuration(*, spacing: Sequence[float], patch_size: Sequence[int], normalization: Sequence[str],
                  use_mask: bool = False, identifier: str = "Plans_3d_fullres") -> dict[str, Any]:
    """A configuration dict with the planner's default resampling components."""
    return {
        "data_identifier": identifier, "preprocessor": "default", "batch_size": 2,
        "patch_size": list(patch_size), "median_image_size_in_voxels": [float(p) for p in patch_size],
        "spacing": list(spacing),
        "normalization": [{"name": n, "params": {"use_mask_for_norm": use_mask}} for n in normalization],
        "resampling_data": {"name": "default", "params": {"is_seg": False, "order": 3, "order_z": 0,
                                                          "force_separate_z": None}},
        "resampling_seg": {"name": "default", "params": {"is_seg": True, "order": 1, "order_z": 0,
                                                         "force_separate_z": None}},
        "resampling_probabilities": {"name": "default", "params": {"is_seg": False, "order": 1, "order_z": 0,
                                                                   "force_separate_z": None}},
        "network": NETWORK if len(patch_size) == 3 else NETWORK_2D, "batch_dice": False,
    }


def build_plans(*, spacing: Sequence[float] = (3.0, 1.0, 1.0), patch_size: Sequence[int] = (8, 16, 16),
                normalization: Sequence[str] = ("zscore",), use_mask: bool = False,
                transpose: Sequence[int] = (0, 1, 2), dataset: str = "Dataset998_Synthetic",
                intensity: dict[str, dict[str, float]] | None = None, with_2d: bool = True,
                extra: dict[str, dict[str, Any]] | None = None) -> Plans:
    """A plans record with ``3d_fullres`` (and ``2d``) configurations."""
    configs = {"3d_fullres": configuration(spacing=spacing, patch_size=patch_size, normalization=normalization,
                                           use_mask=use_mask, identifier="Plans_3d_fullres")}
    if with_2d:
        configs = {"2d": configuration(spacing=spacing[1:], patch_size=patch_size[1:], normalization=normalization,
                                       use_mask=use_mask, identifier="Plans_2d"), **configs}
    configs.update(extra or {})
    backward = [list(transpose).index(i) for i in range(3)]
    return Plans(dataset_name=dataset, plans_name="Plans", planner="test", original_median_spacing_after_transp=
                 tuple(spacing), original_median_shape_after_transp=tuple(patch_size), image_reader_writer="simpleitk",
                 transpose_forward=tuple(transpose), transpose_backward=tuple(backward),
                 foreground_intensity_properties_per_channel=intensity or {
                     "0": {"mean": 100.0, "std": 20.0, "percentile_00_5": 60.0, "percentile_99_5": 180.0}},
                 configurations=configs)


@pytest.fixture
def make_plans() -> Callable[..., Plans]:
    """Factory of hand-built plans (see :func:`build_plans`)."""
    return build_plans


@pytest.fixture
def synthetic_raw(tmp_workspace) -> Callable[..., Path]:
    """Factory writing a tiny synthetic raw dataset into the temporary workspace; returns its folder."""
    from autounet.testing import make_synthetic_dataset

    def make(name: str = "Dataset998_Synthetic", **kwargs: Any) -> Path:
        kwargs.setdefault("n_cases", 4)
        kwargs.setdefault("shape", (10, 24, 24))
        return make_synthetic_dataset(tmp_workspace.raw / name, **kwargs)

    return make
