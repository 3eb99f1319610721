"""Fake "trained configurations" for the validation-stage tests (evaluation, ensembling, find-best, report).

Builds a workspace whose results folder looks like the training pipeline's output: per configuration a model
folder with ``plans.json``, ``dataset.json`` and ``fold_k/validation/`` holding predicted segmentations, saved
probabilities (``<case>.npz`` + ``<case>.meta.json``) and a ``training_log.jsonl``; plus the preprocessed
folder's plans and ``gt_segmentations``. Predictions are softmax outputs of noisy logits around the truth with
spurious far-away blobs, so that configurations, ensembles and post-processing differ measurably.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from autounet.ensembling.probabilities import write_probabilities
from autounet.io import ImageGeometry, write_segmentation
from autounet.labels import LabelSpec
from autounet.schemas.dataset import DatasetSpec, save_dataset_spec
from autounet.workspace import Workspace

DATASET = "Dataset900_Fake"
LABELS = {"background": 0, "a": 1, "b": 2}
SPACING = (2.0, 1.0, 0.8)
SHAPE = (10, 18, 16)


def config_dict(**extra: Any) -> dict[str, Any]:
    base = {
        "data_identifier": "nnUNetPlans_3d_fullres", "preprocessor": "default", "batch_size": 2,
        "patch_size": [8, 16, 16], "median_image_size_in_voxels": list(SHAPE), "spacing": list(SPACING),
        "normalization": [{"name": "zscore", "params": {"use_mask_for_norm": False}}],
        "resampling_data": {"name": "default", "params": {}}, "resampling_seg": {"name": "default", "params": {}},
        "resampling_probabilities": {"name": "default", "params": {}},
        "network": {"name": "plain_unet", "features_per_stage": [8, 16], "kernel_sizes": [[3, 3, 3]] * 2,
                    "strides": [[1, 1, 1], [2, 2, 2]], "blocks_per_stage": [2, 2], "convs_per_stage_decoder": [2]},
        "batch_dice": False,
    }
    base.update(extra)
    return base


def plans_dict() -> dict[str, Any]:
    return {
        "schema": "autounet/plans", "schema_version": 1, "provenance": {"producer": "test"},
        "dataset_name": DATASET, "plans_name": "nnUNetPlans", "planner": "default",
        "original_median_spacing_after_transp": list(SPACING), "original_median_shape_after_transp": list(SHAPE),
        "image_reader_writer": "simpleitk", "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2],
        "foreground_intensity_properties_per_channel": {"0": {"mean": 1.0}},
        "configurations": {
            "2d": config_dict(patch_size=[16, 16], spacing=[1.0, 0.8]),
            "3d_fullres": config_dict(),
            "3d_lowres": config_dict(data_identifier="nnUNetPlans_3d_lowres", next_stage=["3d_cascade_fullres"]),
            "3d_cascade_fullres": {"inherits_from": "3d_fullres", "previous_stage": "3d_lowres"},
        },
    }


@dataclass
class FakeResults:
    """Handles of the fake workspace."""

    workspace: Workspace
    dataset: str
    cases: list[str]
    case_fold: dict[str, int]
    labels: LabelSpec
    geometry: ImageGeometry

    @property
    def gt_dir(self) -> Path:
        return self.workspace.gt_segmentations(self.dataset)

    def model_dir(self, configuration: str) -> Path:
        return self.workspace.model_dir(self.dataset, configuration)


def _reference(rng: np.random.Generator) -> np.ndarray:
    seg = np.zeros(SHAPE, np.uint8)
    z, y, x = rng.integers(1, 3), rng.integers(1, 5), rng.integers(1, 4)
    seg[z:z + 5, y:y + 7, x:x + 6] = 1
    seg[z + 1:z + 4, y + 7:y + 11, x + 1:x + 5] = 2
    return seg


def _prediction_probs(ref: np.ndarray, rng: np.random.Generator, *, noise: float, blobs: bool) -> np.ndarray:
    onehot = np.stack([ref == k for k in range(3)]).astype(np.float32)
    logits = 2.0 * onehot + rng.normal(0.0, noise, size=onehot.shape).astype(np.float32)
    if blobs:
        logits[1, -2:, -3:, -3:] += 6.0  # a spurious label-1 component in a corner
    e = np.exp(logits - logits.max(0, keepdims=True))
    return (e / e.sum(0, keepdims=True)).astype(np.float32)


def make_fake_results(root: Path, *, configurations: dict[str, float] | None = None, n_cases: int = 10,
                      n_folds: int = 5, seed: int = 0, epochs: int = 4) -> FakeResults:
    """A workspace under ``root`` with trained-looking ``configurations`` (name -> logit noise level)."""
    configurations = configurations or {"3d_fullres": 0.9, "3d_lowres": 1.0}
    ws = Workspace.at(root).ensure()
    rng = np.random.default_rng(seed)
    labels = LabelSpec.from_labels(LABELS)
    geometry = ImageGeometry(spacing=SPACING, origin=(5.0, -3.0, 1.0))
    spec = DatasetSpec(channel_names={"0": "MRI"}, labels=dict(LABELS), num_training=n_cases, file_ending=".nii.gz")
    pre = ws.preprocessed_dataset(DATASET)
    pre.mkdir(parents=True, exist_ok=True)
    save_dataset_spec(spec, pre / "dataset.json")
    (pre / "nnUNetPlans.json").write_text(json.dumps(plans_dict()))
    cases = [f"case_{i:03d}" for i in range(n_cases)]
    case_fold = {c: i % n_folds for i, c in enumerate(cases)}
    refs = {c: _reference(rng) for c in cases}
    ws.gt_segmentations(DATASET).mkdir(parents=True, exist_ok=True)
    for c, ref in refs.items():
        write_segmentation(ref, ws.gt_segmentations(DATASET) / f"{c}.nii.gz", geometry)
    for ci, (configuration, noise) in enumerate(configurations.items()):
        model = ws.model_dir(DATASET, configuration)
        model.mkdir(parents=True, exist_ok=True)
        (model / "plans.json").write_text(json.dumps(plans_dict()))
        save_dataset_spec(spec, model / "dataset.json")
        model_rng = np.random.default_rng(seed * 1000 + ci + 1)
        for fold in range(n_folds):
            val = model / f"fold_{fold}" / "validation"
            val.mkdir(parents=True, exist_ok=True)
            _write_log(model / f"fold_{fold}", model_rng, epochs)
            for c in (c for c in cases if case_fold[c] == fold):
                probs = _prediction_probs(refs[c], model_rng, noise=noise, blobs=model_rng.random() < 0.6)
                write_segmentation(labels.to_segmentation(probs), val / f"{c}.nii.gz", geometry)
                write_probabilities(val, c, probs, geometry=geometry, labels=labels, file_ending=".nii.gz")
    return FakeResults(workspace=ws, dataset=DATASET, cases=cases, case_fold=case_fold, labels=labels,
                       geometry=geometry)


def _write_log(fold_dir: Path, rng: np.random.Generator, epochs: int) -> None:
    lines = []
    for e in range(epochs):
        dice = [float(0.5 + 0.1 * e + 0.02 * rng.random()), float(0.4 + 0.1 * e)]
        lines.append(json.dumps({"epoch": e, "train_losses": 1.0 - 0.2 * e, "val_losses": 1.1 - 0.2 * e,
                                 "mean_fg_dice": sum(dice) / 2, "ema_fg_dice": sum(dice) / 2 - 0.01,
                                 "dice_per_class_or_region": dice, "lrs": 0.01 * (1 - e / epochs)}))
    (fold_dir / "training_log.jsonl").write_text("\n".join(lines) + "\n")
