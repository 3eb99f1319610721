"""Driver for the training integration tests (run as a script, possibly under torchrun).

``python training_driver.py make WS`` writes a tiny synthetic dataset (plans, dataset.json, cases as .npy);
``python training_driver.py train WS FOLD EPOCHS [--resume]`` trains it through ``autounet.training.train`` with a
store reading those .npy files (the loop, checkpoints and DDP are the real ones).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import numpy as np

DATASET = "Dataset900_Tiny"
CONFIG = "3d_fullres"


class NpyStore:
    """Cases as ``<case>.npy`` (data), ``<case>_seg.npy`` and ``<case>.json`` (class locations)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def case_ids(self) -> list[str]:
        return sorted(p.stem for p in self.folder.glob("*.json"))

    def properties(self, case: str) -> dict[str, Any]:
        locs = json.loads((self.folder / f"{case}.json").read_text(encoding="utf-8"))
        return {"class_locations": {int(k): np.asarray(v, dtype=np.int64).reshape(-1, 4) for k, v in locs.items()}}

    def open(self, case: str) -> tuple[np.ndarray, np.ndarray]:
        return (np.load(self.folder / f"{case}.npy", mmap_mode="r"),
                np.load(self.folder / f"{case}_seg.npy", mmap_mode="r"))


def make(ws_root: Path, n_cases: int = 6) -> None:
    from autounet.schemas.plans import Plans, save_plans
    from autounet.workspace import Workspace

    ws = Workspace.at(ws_root).ensure()
    pre = ws.preprocessed_dataset(DATASET)
    folder = pre / "nnUNetPlans_3d_fullres"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    for i in range(n_cases):
        shape = (20, 20, 20)
        seg = np.zeros((1, *shape), np.int16)
        c = rng.integers(5, 12, size=3)
        seg[0, c[0]:c[0] + 6, c[1]:c[1] + 6, c[2]:c[2] + 6] = 1
        seg[0, c[0]:c[0] + 3, c[1]:c[1] + 3, c[2]:c[2] + 3] = 2
        data = (rng.normal(size=(1, *shape)) + 1.5 * (seg > 0)).astype(np.float32)
        np.save(folder / f"case_{i:02d}.npy", data)
        np.save(folder / f"case_{i:02d}_seg.npy", seg)
        locs = {str(lab): np.argwhere(seg == lab).tolist() for lab in (1, 2)}
        (folder / f"case_{i:02d}.json").write_text(json.dumps(locs))
    (pre / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "MRI"}, "labels": {"background": 0, "a": 1, "b": 2}, "numTraining": n_cases,
        "file_ending": ".nii.gz"}))
    comp = {"name": "default", "params": {}}
    network = {"name": "plain_unet", "features_per_stage": [4, 8, 16], "kernel_sizes": [[3, 3, 3]] * 3,
               "strides": [[1, 1, 1], [2, 2, 2], [2, 2, 2]], "blocks_per_stage": [2, 2, 2],
               "convs_per_stage_decoder": [2, 2]}
    plans = Plans(dataset_name=DATASET, plans_name="nnUNetPlans", planner="test", original_median_spacing_after_transp=(1.0, 1.0, 1.0),
                  original_median_shape_after_transp=(20, 20, 20), image_reader_writer="sitk",
                  transpose_forward=(0, 1, 2), transpose_backward=(0, 1, 2),
                  foreground_intensity_properties_per_channel={},
                  configurations={CONFIG: {
                      "data_identifier": "nnUNetPlans_3d_fullres", "preprocessor": "default", "batch_size": 2,
                      "patch_size": [16, 16, 16], "median_image_size_in_voxels": [20, 20, 20],
                      "spacing": [1, 1, 1], "normalization": [{"name": "zscore", "params": {"use_mask_for_norm": False}}],
                      "resampling_data": comp, "resampling_seg": comp, "resampling_probabilities": comp,
                      "network": network, "batch_dice": False}})
    save_plans(ws.plans_file(DATASET, "nnUNetPlans"), plans)


def train(ws_root: Path, fold: str, epochs: int, resume: bool) -> Path:
    import torch

    from autounet.training import train as run_training
    from autounet.training import training_config
    from autounet.workspace import Workspace

    torch.set_num_threads(1)
    ws = Workspace.at(ws_root)
    cfg = training_config(epochs=epochs, iterations_per_epoch=3, val_iterations=2, seed=11, deterministic=True,
                          device="cpu", loader_threads=1, threads=1)
    store = NpyStore(ws.preprocessed_data(DATASET, "nnUNetPlans_3d_fullres"))
    return run_training(ws, DATASET, CONFIG, fold if fold == "all" else int(fold), config=cfg, resume=resume,
                        distributed=int(os.environ.get("WORLD_SIZE", "1")) > 1, store=store)


if __name__ == "__main__":
    import logging

    logging.basicConfig(level=logging.INFO, format="%(message)s", stream=sys.stderr)
    if sys.argv[1] == "make":
        make(Path(sys.argv[2]))
    else:
        print(train(Path(sys.argv[2]), sys.argv[3], int(sys.argv[4]), "--resume" in sys.argv))
