"""Make the cascade golden file with the reference (nnunetv2 2.8.1) in its own venv.

Usage (from the repository root, a few seconds)::

    .venv/bin/python benchmarks/golden/make_cascade.py [--out tests/data/golden/cascade]

For a few small, spatially smooth random logits arrays (label mode with 3 outputs, and region mode with 2 regions)
and pairs of (low-resolution configuration spacing, next-stage shape) that hit the linear and the separate-z
branches, it runs the reference's ``nnunetv2.inference.export_prediction.resample_and_save`` — the function
``nnUNetTrainer.perform_actual_validation`` calls for ``next_stage`` configurations — with a minimal plans and
dataset.json, reads back the ``.b2nd`` it writes and stores inputs and outputs in ``next_stage.npz``:
``<k>_logits`` (float32), ``<k>_spacing``, ``<k>_target``, ``<k>_regions`` (0/1) and ``<k>_seg`` (the reference's
array, its dtype kept), for ``k`` in ``cases``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO / "src"))

from reference import run_reference_python  # noqa: E402

#: name → (outputs, logits shape, lowres spacing, next-stage shape, region mode)
CASES = {
    "iso": (3, (8, 10, 9), (2.0, 2.0, 2.0), (16, 21, 17), False),
    "aniso": (3, (5, 12, 11), (6.0, 1.5, 1.5), (11, 25, 21), False),
    "uneven": (3, (7, 9, 10), (2.5, 2.0, 2.2), (15, 17, 21), False),
    "same": (3, (6, 8, 7), (2.0, 2.0, 2.0), (6, 8, 7), False),
    "regions": (2, (7, 9, 8), (2.0, 2.0, 2.0), (14, 19, 15), True),
}

REFERENCE_CODE = r'''
import json, sys
import numpy as np, torch, blosc2
from nnunetv2.inference.export_prediction import resample_and_save
from nnunetv2.training.dataloading.nnunet_dataset import nnUNetDatasetBlosc2
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
folder = sys.argv[1] if len(sys.argv) > 1 else FOLDER
spec = json.load(open(folder + "/cases.json"))
for name, (k, shape, spacing, target, regions) in spec.items():
    logits = np.load(folder + f"/{name}_logits.npy")
    config = {"data_identifier": "x", "preprocessor_name": "DefaultPreprocessor", "batch_size": 2,
              "patch_size": [8, 8, 8], "median_image_size_in_voxels": list(shape), "spacing": list(spacing),
              "normalization_schemes": ["ZScoreNormalization"], "use_mask_for_norm": [False],
              "resampling_fn_data": "resample_data_or_seg_to_shape",
              "resampling_fn_seg": "resample_data_or_seg_to_shape",
              "resampling_fn_data_kwargs": {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None},
              "resampling_fn_seg_kwargs": {"is_seg": True, "order": 1, "order_z": 0, "force_separate_z": None},
              "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
              "resampling_fn_probabilities_kwargs": {"is_seg": False, "order": 1, "order_z": 0,
                                                     "force_separate_z": None},
              "architecture": {"network_class_name": "x", "arch_kwargs": {}, "_kw_requires_import": []},
              "batch_dice": False, "next_stage": "3d_cascade_fullres"}
    plans = {"dataset_name": "Dataset999_X", "plans_name": "nnUNetPlans",
             "original_median_spacing_after_transp": list(spacing), "original_median_shape_after_transp": list(shape),
             "image_reader_writer": "SimpleITKIO", "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2],
             "configurations": {"3d_lowres": config}, "experiment_planner_used": "x", "label_manager": "LabelManager",
             "foreground_intensity_properties_per_channel": {}}
    labels = ({"background": 0, "whole": [1, 2], "core": 2} if regions else
              {"background": 0, "a": 1, "b": 2})
    dataset_json = {"labels": labels, "channel_names": {"0": "MR"}, "numTraining": 1, "file_ending": ".nii.gz"}
    if regions:
        dataset_json["regions_class_order"] = [1, 2]
    pm = PlansManager(plans)
    cm = pm.get_configuration("3d_lowres")
    props = {"spacing": list(spacing), "shape_after_cropping_and_before_resampling": list(shape)}
    out = folder + f"/{name}_ref"
    resample_and_save(torch.from_numpy(logits), list(target), out, pm, cm, props, dataset_json, 1,
                      nnUNetDatasetBlosc2)
    np.save(folder + f"/{name}_seg.npy", blosc2.open(out + ".b2nd", mode="r")[:])
print("ok")
'''


def _smooth_logits(rng: np.random.Generator, k: int, shape: tuple[int, ...]) -> np.ndarray:
    from autounet.preprocessing import resample_data_or_seg_to_shape

    coarse = rng.normal(size=(k, *(max(2, s // 3) for s in shape)))
    return (resample_data_or_seg_to_shape(coarse, shape, (1.0,) * 3, (1.0,) * 3, order=1) * 4).astype(np.float32)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "tests" / "data" / "golden" / "cascade")
    args = parser.parse_args()
    rng = np.random.default_rng(2024)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        stored: dict[str, np.ndarray] = {}
        for name, (k, shape, spacing, target, regions) in CASES.items():
            logits = _smooth_logits(rng, k, shape)
            np.save(folder / f"{name}_logits.npy", logits)
            stored.update({f"{name}_logits": logits, f"{name}_spacing": np.array(spacing),
                           f"{name}_target": np.array(target), f"{name}_regions": np.array(int(regions))})
        (folder / "cases.json").write_text(json.dumps(CASES))
        print(run_reference_python(REFERENCE_CODE.replace("FOLDER", repr(str(folder))), folder / "ref").strip())
        for name in CASES:
            stored[f"{name}_seg"] = np.load(folder / f"{name}_seg.npy")
        args.out.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(args.out / "next_stage.npz", cases=np.array(list(CASES)), **stored)
    print(f"wrote {args.out / 'next_stage.npz'}")


if __name__ == "__main__":
    main()
