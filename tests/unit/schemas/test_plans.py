"""Plans record: round trip, validation, and configuration inheritance as the reference resolves it."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from autounet.errors import PlansError, SchemaError
from autounet.schemas.plans import Plans, load_plans, save_plans


def _config() -> dict[str, Any]:
    return {
        "data_identifier": "nnUNetPlans_3d_fullres",
        "preprocessor": "default",
        "batch_size": 9,
        "patch_size": [40, 56, 40],
        "median_image_size_in_voxels": [36.0, 50.0, 35.0],
        "spacing": [1.0, 1.0, 1.0],
        "normalization": [{"name": "zscore", "params": {"use_mask_for_norm": False}}],
        "resampling_data": {"name": "default", "params": {"is_seg": False, "order": 3, "order_z": 0,
                                                          "force_separate_z": None}},
        "resampling_seg": {"name": "default", "params": {"is_seg": True, "order": 1, "order_z": 0,
                                                         "force_separate_z": None}},
        "resampling_probabilities": {"name": "default", "params": {"is_seg": False, "order": 1, "order_z": 0,
                                                                   "force_separate_z": None}},
        "network": {"name": "plain_unet", "features_per_stage": [32, 64, 128, 256],
                    "kernel_sizes": [[3, 3, 3]] * 4, "strides": [[1, 1, 1]] + [[2, 2, 2]] * 3,
                    "blocks_per_stage": [2, 2, 2, 2], "convs_per_stage_decoder": [2, 2, 2]},
        "batch_dice": False,
    }


def _plans(**configs: dict[str, Any]) -> dict[str, Any]:
    return {
        "schema": "autounet/plans", "schema_version": 1, "provenance": {"producer": "test"},
        "dataset_name": "Dataset004_Hippocampus", "plans_name": "nnUNetPlans", "planner": "default",
        "original_median_spacing_after_transp": [1.0, 1.0, 1.0],
        "original_median_shape_after_transp": [36, 50, 35], "image_reader_writer": "sitk",
        "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2],
        "foreground_intensity_properties_per_channel": {"0": {"mean": 1.0}},
        "configurations": configs or {"3d_fullres": _config()},
    }


def test_round_trip(tmp_path: Path) -> None:
    plans = Plans.from_dict(_plans())
    save_plans(tmp_path / "p.json", plans)
    again = load_plans(tmp_path / "p.json")
    assert again == plans
    cfg = again.configuration("3d_fullres")
    assert cfg.patch_size == (40, 56, 40) and cfg.ndim == 3 and cfg.network.n_stages == 4
    assert cfg.to_dict() == _config() | {"network": cfg.network.to_dict()}
    assert cfg.network.to_dict()["kernel_sizes"] == [[3, 3, 3]] * 4


def test_inheritance_is_a_shallow_update() -> None:
    child = {"inherits_from": "3d_fullres", "batch_size": 16,
             "network": copy.deepcopy(_config()["network"]) | {"features_per_stage": [16, 32, 64, 128]}}
    plans = Plans.from_dict(_plans(**{"3d_fullres": _config(), "3d_fullres_bs16": child}))
    cfg = plans.configuration("3d_fullres_bs16")
    assert cfg.batch_size == 16
    assert cfg.patch_size == (40, 56, 40)
    assert cfg.data_identifier == "nnUNetPlans_3d_fullres"
    assert cfg.network.features_per_stage == (16, 32, 64, 128)  # nested value replaced wholesale


def test_inheritance_cycle_and_unknown_parent_are_errors() -> None:
    with pytest.raises(PlansError, match="Circular"):
        Plans.from_dict(_plans(a={"inherits_from": "b"}, b={"inherits_from": "a"}))
    with pytest.raises(PlansError, match="'nope'.*not in plans"):
        Plans.from_dict(_plans(a={"inherits_from": "nope"}))
    plans = Plans.from_dict(_plans())
    with pytest.raises(PlansError, match="Available: 3d_fullres"):
        plans.configuration("2d")


def test_unknown_and_missing_keys_are_reported() -> None:
    bad = _plans()
    bad["configurations"]["3d_fullres"]["batchsize"] = 3
    with pytest.raises(SchemaError, match="unknown key.*batchsize"):
        Plans.from_dict(bad).configuration("3d_fullres")
    missing = _plans()
    del missing["transpose_forward"]
    with pytest.raises(SchemaError, match="missing key.*transpose_forward"):
        Plans.from_dict(missing)


def test_wrong_schema_and_newer_version(tmp_path: Path) -> None:
    data = _plans()
    data["schema_version"] = 99
    with pytest.raises(SchemaError, match="newer"):
        Plans.from_dict(data)
    path = tmp_path / "broken.json"
    path.write_text("{not json")
    with pytest.raises(SchemaError, match="not valid JSON"):
        load_plans(path)
    path.write_text(json.dumps({"schema": "other", "schema_version": 1}))
    with pytest.raises(SchemaError, match="expected schema"):
        load_plans(path)


def test_network_stage_counts_are_checked() -> None:
    data = _plans()
    data["configurations"]["3d_fullres"]["network"]["convs_per_stage_decoder"] = [2, 2, 2, 2]
    with pytest.raises(SchemaError, match="inconsistent stage counts"):
        Plans.from_dict(data).configuration("3d_fullres")
