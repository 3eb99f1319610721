"""The onnxruntime backend on real Hippocampus images with the Hippocampus 3d_fullres network (slow)."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

pytest.importorskip("onnxruntime")

from autounet.inference import Predictor
from autounet.inference.onnx import export_onnx
from autounet.inference.testing import (
    tiny_configuration,
    tiny_dataset,
    tiny_plans,
    write_random_model,
)
from autounet.io import read_images

HIPPO_NETWORK = {"name": "plain_unet", "features_per_stage": [32, 64, 128, 256], "kernel_sizes": [[3, 3, 3]] * 4,
                 "strides": [[1, 1, 1]] + [[2, 2, 2]] * 3, "blocks_per_stage": [2, 2, 2, 2],
                 "convs_per_stage_decoder": [2, 2, 2], "conv_bias": True, "norm": "instance",
                 "nonlin": "leaky_relu"}


@pytest.mark.slow
def test_onnxruntime_matches_torch_on_hippocampus(shared_datasets, tmp_path):
    config = {**tiny_configuration((40, 56, 40), (1.0, 1.0, 1.0)), "network": HIPPO_NETWORK}
    plans = replace(tiny_plans(), configurations={"3d_fullres": config})
    dataset = tiny_dataset(labels={"background": 0, "Anterior": 1, "Posterior": 2})
    model_dir = write_random_model(tmp_path / "results", plans, dataset, "3d_fullres", seed=1)
    onnx_file = export_onnx(model_dir, tmp_path / "hippo.onnx")
    torch_pred = Predictor.from_model_dir(model_dir, device="cpu")
    ort_pred = Predictor.from_model_dir(onnx_file, backend="onnxruntime")
    assert ort_pred.options.mirror_axes == (0, 1, 2)
    equal = total = 0
    for case in ("hippocampus_001", "hippocampus_003"):
        img, geom = read_images([shared_datasets / "Hippocampus" / "images" / f"{case}.nii.gz"])
        a = torch_pred.predict(img, geom, return_probabilities=True)
        b = ort_pred.predict(img, geom, return_probabilities=True)
        assert len(np.unique(a.segmentation)) > 1
        assert float(np.abs(a.probabilities - b.probabilities).max()) <= 1e-3
        equal += int((a.segmentation == b.segmentation).sum())
        total += a.segmentation.size
    assert equal / total >= 0.9999
