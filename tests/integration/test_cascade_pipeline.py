"""``autounet run`` with a cascade on a tiny synthetic dataset: 3d_lowres folds, their next-stage predictions, then
3d_cascade_fullres folds trained on them (the planner makes no 3d_lowres for such small images, so the two
configurations are added to the plans file by hand, as a user would; re-planning keeps them)."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from autounet import pipeline
from autounet.pipeline.cascade import next_stage_dir
from autounet.planning.store import plan_dataset
from autounet.preprocessing import CaseStore
from autounet.schemas.plans import load_plans, save_plans
from autounet.testing import make_synthetic_dataset
from autounet.training.data import PreviousStage
from autounet.workspace import Workspace

NAME = "Dataset997_CascadeToy"
CASES = [f"case_{i:03d}" for i in range(6)]


def _tiny_network(patch: list[int]) -> dict:
    strides = [1 if p % 2 else 2 for p in patch]
    return {"name": "plain_unet", "features_per_stage": [4, 8], "kernel_sizes": [[3, 3, 3]] * 2,
            "strides": [[1, 1, 1], strides], "blocks_per_stage": [1, 1], "convs_per_stage_decoder": [1]}


def _add_cascade_to_plans(ws: Workspace) -> None:
    """Plan, then add 3d_lowres (twice coarser) and 3d_cascade_fullres with tiny networks to the plans file."""
    _, path = plan_dataset(ws, NAME, workers=1)
    plans = load_plans(path)
    fullres = plans.resolved_dict("3d_fullres")
    network = _tiny_network(fullres["patch_size"])
    configs = dict(plans.configurations)
    configs["3d_lowres"] = {**fullres, "data_identifier": f"{plans.plans_name}_3d_lowres",
                            "spacing": [2 * s for s in fullres["spacing"]], "network": network, "batch_size": 2,
                            "batch_dice": False, "next_stage": ["3d_cascade_fullres"]}
    configs["3d_cascade_fullres"] = {"inherits_from": "3d_fullres", "previous_stage": "3d_lowres",
                                     "network": network, "batch_size": 2}
    save_plans(path, dataclasses.replace(plans, configurations=configs))


@pytest.mark.slow
def test_run_trains_lowres_then_cascade(tmp_path: Path) -> None:
    ws = Workspace.at(tmp_path / "ws").ensure()
    make_synthetic_dataset(ws.raw / NAME, n_cases=len(CASES), shape=(10, 20, 20), spacing=(2.0, 1.0, 1.0))
    _add_cascade_to_plans(ws)
    ws.splits_file(NAME).write_text(json.dumps([{"train": CASES[3:], "val": CASES[:3]},
                                                {"train": CASES[:3], "val": CASES[3:]}]))
    options = pipeline.RunOptions(configurations=("3d_cascade_fullres",), folds=(0, 1), devices=("cpu",),
                                  workers=1, training_overrides={"epochs": 1, "iterations_per_epoch": 2,
                                                                 "val_iterations": 1, "batch_size": 2,
                                                                 "loader_threads": 0})
    steps: list[tuple[str, str]] = []
    summary = pipeline.run(ws, NAME, options=options, on_step=lambda step, msg: steps.append((step, msg)))

    # 3d_lowres was brought in, trained on both folds before any cascade fold
    assert summary.configurations == ["3d_lowres", "3d_cascade_fullres"]
    assert summary.trained == ["3d_lowres/fold_0", "3d_lowres/fold_1", "3d_cascade_fullres/fold_0",
                               "3d_cascade_fullres/fold_1"]
    assert not summary.failed and summary.information is not None
    assert any(s == "cascade" and "3d_lowres/fold_1: 3 next-stage prediction(s) written (" in m for s, m in steps)

    # every case has a previous-stage segmentation in the cascade's preprocessed geometry
    folder = next_stage_dir(ws, NAME, "3d_lowres", "3d_cascade_fullres")
    plans = load_plans(ws.plans_file(NAME, "nnUNetPlans"))
    store = CaseStore(ws.preprocessed_data(NAME, plans.configuration("3d_cascade_fullres").data_identifier))
    assert store.folder.name == "nnUNetPlans_3d_fullres"  # shared with 3d_fullres
    for case in CASES:
        seg = np.asarray(PreviousStage(folder).open(case)[...])
        assert seg.shape == tuple(store.open(case).data.shape[1:])
        assert set(np.unique(seg)) <= {0, 1, 2}

    # the cascade network takes image + one channel per foreground label
    cascade_dir = ws.model_dir(NAME, "3d_cascade_fullres")
    weights = torch.load(cascade_dir / "fold_0" / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    first = next(v for k, v in weights["network_weights"].items() if k.endswith("weight") and v.ndim == 5)
    assert first.shape[1] == 1 + 2
    for fold in (0, 1):
        assert (cascade_dir / f"fold_{fold}" / "validation" / "summary.json").is_file()

    # a second run reuses everything
    again = pipeline.run(ws, NAME, options=options)
    assert again.trained == [] and sorted(again.reused) == sorted(summary.trained)
