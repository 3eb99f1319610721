"""Make the planning golden files with the reference implementation (nnunetv2 2.8.1).

Usage (from the repository root, with the project venv)::

    nice -n 10 .venv/bin/python benchmarks/golden/make_planning.py [--out tests/data/golden/planning]
        [--only NAME ...] [--workers 2]

What it does (all in a temporary reference workspace; the raw data is never modified):

* ``Dataset004_Hippocampus``: the 208 image/label pairs of ``../shared/datasets/Hippocampus`` copied to the
  reference's raw layout (``imagesTr/<case>_0000.nii.gz``, ``labelsTr/<case>.nii.gz``; dataset.json with channel
  ``MRI`` and labels background/Anterior/Posterior), then ``nnUNetv2_extract_fingerprint -d 4 -np N`` and
  ``nnUNetv2_plan_experiment -d 4`` with the default planner, ``-pl nnUNetPlannerResEncM/L/XL``, and
  ``-gpu_memory_target 40 -overwrite_plans_name ...`` (default and ResEnc L).
* Synthetic datasets (``Dataset50x_*``): a fingerprint JSON written directly (seeded numpy, see ``SYNTHETIC``),
  a dataset.json and one tiny dummy image (the planner only uses it to pick the reader); then the reference
  planner classes are run in the reference venv (``run_reference_python``).

Outputs per dataset folder: ``dataset.json``, ``dataset_fingerprint.json`` (the planner input; for Hippocampus the
reference's own extraction) and one ``<plans_name>.json`` per run, plus ``manifest.json`` listing every run with
the preset and options our planner must be called with. ``vram_estimates.json`` holds the reference networks'
``compute_conv_feature_map_size`` (the planner's VRAM proxy) for 12 topologies.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve()
REPO = HERE.parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))
from reference import run_reference, run_reference_python  # noqa: E402

HIPPOCAMPUS = REPO.parent / "shared" / "datasets" / "Hippocampus"
PRESET_CLASS = {"default": "ExperimentPlanner", "resenc": "ResEncUNetPlanner", "resenc-m": "nnUNetPlannerResEncM",
                "resenc-l": "nnUNetPlannerResEncL", "resenc-xl": "nnUNetPlannerResEncXL"}
PRESET_PLANS = {"default": "nnUNetPlans", "resenc": "nnUNetResEncUNetPlans", "resenc-m": "nnUNetResEncUNetMPlans",
                "resenc-l": "nnUNetResEncUNetLPlans", "resenc-xl": "nnUNetResEncUNetXLPlans"}
ALL_PRESETS = [{"preset": p} for p in ("default", "resenc-m", "resenc-l", "resenc-xl")]


def _stats(rng: np.random.Generator) -> dict[str, float]:
    lo, hi = sorted(rng.uniform(-200, 1500, 2))
    mean = float(rng.uniform(lo, hi))
    return {"mean": mean, "median": mean * 0.98, "std": float((hi - lo) / 4), "min": lo - 100, "max": hi + 100,
            "percentile_99_5": hi, "percentile_00_5": lo}


def _cases(rng: np.random.Generator, n: int, spacing_fn: Any, shape_fn: Any) -> tuple[list, list]:
    spacings, shapes = [], []
    for _ in range(n):
        sp = spacing_fn(rng)
        spacings.append([float(v) for v in sp])
        shapes.append([int(v) for v in shape_fn(rng, sp)])
    return spacings, shapes


def _aniso_ct(rng: np.random.Generator) -> dict[str, Any]:
    def spacing(r: np.random.Generator) -> list[float]:
        z = float(r.choice([5.0, 2.5, 1.25], p=[0.7, 0.2, 0.1]))
        xy = round(float(r.uniform(0.6, 0.98)), 4)
        return [z, xy, xy]

    def shape(r: np.random.Generator, sp: list[float]) -> list[int]:
        return [round(r.uniform(300, 500) / sp[0]), int(r.integers(380, 513)), int(r.integers(380, 513))]

    return dict(zip(("spacings", "shapes_after_crop"), _cases(rng, 120, spacing, shape), strict=True))


def _multi_mri(rng: np.random.Generator) -> dict[str, Any]:
    def spacing(r: np.random.Generator) -> list[float]:
        return [1.0, 1.0, 1.0] if r.random() < 0.8 else [1.0, 0.9375, 0.9375]

    def shape(r: np.random.Generator, sp: list[float]) -> list[int]:
        return [int(r.integers(128, 155)), int(r.integers(160, 185)), int(r.integers(128, 150))]

    return dict(zip(("spacings", "shapes_after_crop"), _cases(rng, 300, spacing, shape), strict=True))


def _rgb_2d(rng: np.random.Generator) -> dict[str, Any]:
    def shape(r: np.random.Generator, sp: list[float]) -> list[int]:
        return [1, int(r.integers(400, 601)), int(r.integers(500, 801))]

    return dict(zip(("spacings", "shapes_after_crop"), _cases(rng, 80, lambda r: [999.0, 1.0, 1.0], shape),
                    strict=True))


def _tiny_ct(rng: np.random.Generator) -> dict[str, Any]:
    def shape(r: np.random.Generator, sp: list[float]) -> list[int]:
        return [int(r.integers(58, 70)), int(r.integers(74, 86)), int(r.integers(58, 70))]

    return dict(zip(("spacings", "shapes_after_crop"), _cases(rng, 60, lambda r: [0.8, 0.8, 0.8], shape),
                    strict=True))


def _large_iso_ct(rng: np.random.Generator) -> dict[str, Any]:
    def spacing(r: np.random.Generator) -> list[float]:
        xy = round(float(r.uniform(0.7, 0.9)), 3)
        return [float(r.choice([0.8, 1.0, 1.25])), xy, xy]

    def shape(r: np.random.Generator, sp: list[float]) -> list[int]:
        return [round(r.uniform(250, 400) / sp[0]), int(r.integers(400, 513)), int(r.integers(400, 513))]

    return dict(zip(("spacings", "shapes_after_crop"), _cases(rng, 50, spacing, shape), strict=True))


def _acdc_like(rng: np.random.Generator) -> dict[str, Any]:
    spacings = [[10.0, 1.5625, 1.5625]] * 60 + [[5.0, 1.5625, 1.5625]] * 40
    shapes = [[10, 256, 216]] * 60 + [[20, 256, 216]] * 40
    return {"spacings": spacings, "shapes_after_crop": shapes}


SYNTHETIC: dict[str, dict[str, Any]] = {
    "Dataset501_AnisoCT": {
        "make": _aniso_ct, "relative_size": 0.81, "file_ending": ".nii.gz",
        "channel_names": {"0": "CT"}, "labels": {"background": 0, "liver": 1, "tumor": 2},
        "runs": [*ALL_PRESETS,
                 {"preset": "default", "plans_name": "nnUNetPlans_ts", "target_spacing": [2.5, 0.8, 0.8]}],
    },
    "Dataset502_MultiMRI": {
        "make": _multi_mri, "relative_size": 0.55, "file_ending": ".nii.gz",
        "channel_names": {"0": "T1", "1": "T1ce", "2": "T2", "3": "FLAIR"},
        "labels": {"background": 0, "whole_tumor": [1, 2, 3], "tumor_core": [2, 3], "enhancing": 3, "ignore": 4},
        "regions_class_order": [1, 2, 3], "runs": ALL_PRESETS,
    },
    "Dataset503_RGB2D": {
        "make": _rgb_2d, "relative_size": 1.0, "file_ending": ".png",
        "channel_names": {"0": "rgb_to_0_1", "1": "rgb_to_0_1", "2": "rgb_to_0_1"},
        "labels": {"background": 0, "road": 1}, "runs": ALL_PRESETS,
    },
    "Dataset504_TinyCT": {
        "make": _tiny_ct, "relative_size": 0.6, "file_ending": ".nii.gz",
        "channel_names": {"0": "CT", "1": "rescale_to_0_1", "2": "noNorm"},
        "labels": {"background": 0, "organ": 1}, "runs": [{"preset": "default"}, {"preset": "resenc"},
                                                         {"preset": "resenc-m"}],
    },
    "Dataset505_LargeCT": {
        "make": _large_iso_ct, "relative_size": 0.9, "file_ending": ".nii.gz",
        "channel_names": {"0": "CT"}, "labels": {"background": 0, "a": 1, "b": 2, "c": 3, "d": 4},
        "runs": [{"preset": "default"}, {"preset": "default", "gpu_memory_gb": 40, "plans_name": "nnUNetPlans_40G"},
                 {"preset": "resenc-l"},
                 {"preset": "resenc-l", "gpu_memory_gb": 40, "plans_name": "nnUNetResEncUNetLPlans_40G"},
                 {"preset": "resenc-xl"}],
    },
    "Dataset506_ACDCLike": {
        "make": _acdc_like, "relative_size": 0.95, "file_ending": ".nii.gz",
        "channel_names": {"0": "cineMRI"}, "labels": {"background": 0, "RV": 1, "MLV": 2, "LVC": 3},
        "runs": ALL_PRESETS,
    },
}


def _dataset_json(cfg: dict[str, Any], num_training: int) -> dict[str, Any]:
    out = {"channel_names": cfg["channel_names"], "labels": cfg["labels"], "numTraining": num_training,
           "file_ending": cfg["file_ending"]}
    if "regions_class_order" in cfg:
        out["regions_class_order"] = cfg["regions_class_order"]
    return out


def _write_dummy_case(raw: Path, cfg: dict[str, Any]) -> None:
    """One tiny image/label pair: the reference planner uses the first image only to choose the reader."""
    (raw / "imagesTr").mkdir(parents=True, exist_ok=True)
    (raw / "labelsTr").mkdir(parents=True, exist_ok=True)
    if cfg["file_ending"] == ".png":
        from PIL import Image

        Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(raw / "imagesTr" / "case_0000.png")
        Image.fromarray(np.zeros((4, 4), np.uint8)).save(raw / "labelsTr" / "case.png")
        return
    import SimpleITK as sitk

    for c in range(len(cfg["channel_names"])):
        sitk.WriteImage(sitk.GetImageFromArray(np.zeros((4, 4, 4), np.float32)),
                        str(raw / "imagesTr" / f"case_{c:04d}{cfg['file_ending']}"))
    sitk.WriteImage(sitk.GetImageFromArray(np.zeros((4, 4, 4), np.uint8)),
                    str(raw / "labelsTr" / f"case{cfg['file_ending']}"))


def _planner_code(dataset: str, runs: list[dict[str, Any]]) -> str:
    lines = ["import warnings; warnings.simplefilter('ignore')",
             "from nnunetv2.experiment_planning.experiment_planners.default_experiment_planner import "
             "ExperimentPlanner",
             "from nnunetv2.experiment_planning.experiment_planners.residual_unets.residual_encoder_unet_planners "
             "import ResEncUNetPlanner, nnUNetPlannerResEncM, nnUNetPlannerResEncL, nnUNetPlannerResEncXL"]
    for run in runs:
        kwargs = []
        if run.get("gpu_memory_gb") is not None:
            kwargs.append(f"gpu_memory_target_in_gb={float(run['gpu_memory_gb'])!r}")
        if run.get("plans_name"):
            kwargs.append(f"plans_name={run['plans_name']!r}")
        if run.get("target_spacing"):
            kwargs.append(f"overwrite_target_spacing={[float(v) for v in run['target_spacing']]!r}")
        lines.append(f"{PRESET_CLASS[run['preset']]}({dataset!r}, {', '.join(kwargs)}).plan_experiment()")
    return "\n".join(lines)


def _plans_name(run: dict[str, Any]) -> str:
    return run.get("plans_name") or PRESET_PLANS[run["preset"]]


def make_synthetic(name: str, cfg: dict[str, Any], root: Path, out: Path) -> list[dict[str, Any]]:
    rng = np.random.default_rng(int(name[7:10]))
    body = cfg["make"](rng)
    n = len(body["spacings"])
    fingerprint = {**body, "foreground_intensity_properties_per_channel": {
        str(c): _stats(rng) for c in range(len(cfg["channel_names"]))},
        "median_relative_size_after_cropping": cfg["relative_size"]}
    raw, pre = root / "raw" / name, root / "preprocessed" / name
    _write_dummy_case(raw, cfg)
    (raw / "dataset.json").write_text(json.dumps(_dataset_json(cfg, n), indent=2))
    pre.mkdir(parents=True, exist_ok=True)
    (pre / "dataset_fingerprint.json").write_text(json.dumps(fingerprint, indent=2))
    run_reference_python(_planner_code(name, cfg["runs"]), root, threads=1)
    return _collect(name, root, out, cfg["runs"])


def make_hippocampus(root: Path, out: Path, *, workers: int) -> list[dict[str, Any]]:
    name = "Dataset004_Hippocampus"
    raw = root / "raw" / name
    (raw / "imagesTr").mkdir(parents=True)
    (raw / "labelsTr").mkdir(parents=True)
    pairs = sorted(p.name for p in (HIPPOCAMPUS / "labels").glob("*.nii.gz")
                   if (HIPPOCAMPUS / "images" / p.name).is_file())
    for f in pairs:
        case = f[: -len(".nii.gz")]
        shutil.copyfile(HIPPOCAMPUS / "images" / f, raw / "imagesTr" / f"{case}_0000.nii.gz")
        shutil.copyfile(HIPPOCAMPUS / "labels" / f, raw / "labelsTr" / f)
    spec = {"channel_names": {"0": "MRI"}, "labels": {"background": 0, "Anterior": 1, "Posterior": 2},
            "numTraining": len(pairs), "file_ending": ".nii.gz", "name": "Hippocampus"}
    (raw / "dataset.json").write_text(json.dumps(spec, indent=2))
    run_reference(["nnUNetv2_extract_fingerprint", "-d", "4", "-np", str(workers)], root, threads=1)
    runs = [*ALL_PRESETS, {"preset": "default", "gpu_memory_gb": 40, "plans_name": "nnUNetPlans_40G"},
            {"preset": "resenc-l", "gpu_memory_gb": 40, "plans_name": "nnUNetResEncUNetLPlans_40G"}]
    for run in runs:
        args = ["nnUNetv2_plan_experiment", "-d", "4", "-pl", PRESET_CLASS[run["preset"]]]
        if run.get("gpu_memory_gb") is not None:
            args += ["-gpu_memory_target", str(run["gpu_memory_gb"]), "-overwrite_plans_name", run["plans_name"]]
        run_reference(args, root, threads=1)
    return _collect(name, root, out, runs)


def _collect(name: str, root: Path, out: Path, runs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    target = out / name
    target.mkdir(parents=True, exist_ok=True)
    pre = root / "preprocessed" / name
    shutil.copyfile(root / "raw" / name / "dataset.json", target / "dataset.json")
    shutil.copyfile(pre / "dataset_fingerprint.json", target / "dataset_fingerprint.json")
    manifest = []
    for run in runs:
        plans = f"{_plans_name(run)}.json"
        shutil.copyfile(pre / plans, target / plans)
        manifest.append({"dataset": name, "plans_file": f"{name}/{plans}", "preset": run["preset"],
                         "gpu_memory_gb": run.get("gpu_memory_gb"), "plans_name": run.get("plans_name"),
                         "target_spacing": run.get("target_spacing")})
    return manifest


VRAM_CASES = [
    # network, patch, strides, num_classes, deep_supervision
    ("plain_unet", [40, 56, 40], [[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2]], 3, False),
    ("plain_unet", [128, 128, 128], [[1, 1, 1]] + [[2, 2, 2]] * 5, 3, False),
    ("plain_unet", [20, 256, 224], [[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2], [1, 2, 2], [1, 2, 2]], 4, False),
    ("plain_unet", [37, 61, 45], [[1, 1, 1], [2, 2, 2], [1, 2, 2], [2, 2, 1]], 5, True),
    ("plain_unet", [512, 512], [[1, 1]] + [[2, 2]] * 7, 2, False),
    ("plain_unet", [56, 40], [[1, 1], [2, 2], [2, 2], [2, 2]], 3, True),
    ("resenc_unet", [128, 128, 128], [[1, 1, 1]] + [[2, 2, 2]] * 5, 3, True),
    ("resenc_unet", [128, 128, 128], [[1, 1, 1]] + [[2, 2, 2]] * 5, 3, False),
    ("resenc_unet", [512, 512], [[1, 1]] + [[2, 2]] * 6, 3, True),
    ("resenc_unet", [160, 192, 224], [[1, 1, 1]] + [[2, 2, 2]] * 5, 14, False),
    ("resenc_unet", [20, 256, 224], [[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2], [1, 2, 2], [1, 2, 2]], 4, False),
    ("resenc_unet", [33, 47, 29], [[1, 1, 1], [2, 2, 2], [2, 1, 2], [2, 2, 2]], 6, True),
]


def make_vram(out: Path) -> None:
    """``vram_estimates.json``: the reference networks' ``compute_conv_feature_map_size`` for several topologies."""
    cases = []
    for network, patch, strides, classes, ds in VRAM_CASES:
        n, dim = len(strides), len(patch)
        features = [min(320 if dim == 3 else 512, 32 * 2 ** s) for s in range(n)]
        blocks = [2] * n if network == "plain_unet" else [1, 3, 4, 6, 6, 6, 6, 6, 6, 6][:n]
        dec = [2 if network == "plain_unet" else 1] * (n - 1)
        cases.append({"network": network, "patch_size": patch, "strides": strides, "num_outputs": classes,
                      "deep_supervision": ds, "features_per_stage": features, "blocks_per_stage": blocks,
                      "convs_per_stage_decoder": dec})
    code = f"""
import json, torch
from dynamic_network_architectures.architectures.unet import PlainConvUNet, ResidualEncoderUNet
cases = json.loads({json.dumps(json.dumps(cases))})
out = []
for c in cases:
    dim = len(c["patch_size"])
    conv = torch.nn.Conv3d if dim == 3 else torch.nn.Conv2d
    norm = torch.nn.InstanceNorm3d if dim == 3 else torch.nn.InstanceNorm2d
    common = dict(input_channels=1, n_stages=len(c["strides"]), features_per_stage=c["features_per_stage"],
                  conv_op=conv, kernel_sizes=3, strides=c["strides"], num_classes=c["num_outputs"],
                  n_conv_per_stage_decoder=c["convs_per_stage_decoder"], conv_bias=True, norm_op=norm,
                  norm_op_kwargs={{"eps": 1e-5, "affine": True}}, nonlin=torch.nn.LeakyReLU,
                  nonlin_kwargs={{"inplace": True}}, deep_supervision=c["deep_supervision"])
    if c["network"] == "plain_unet":
        net = PlainConvUNet(n_conv_per_stage=c["blocks_per_stage"], **common)
    else:
        net = ResidualEncoderUNet(n_blocks_per_stage=c["blocks_per_stage"], **common)
    out.append(dict(c, expected=int(net.compute_conv_feature_map_size(c["patch_size"]))))
print(json.dumps(out))
"""
    with tempfile.TemporaryDirectory() as tmp:
        result = json.loads(run_reference_python(code, Path(tmp), threads=1).strip().splitlines()[-1])
    (out / "vram_estimates.json").write_text(json.dumps(result, indent=1) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "tests" / "data" / "golden" / "planning")
    parser.add_argument("--only", nargs="*", help="dataset names (or 'vram') to (re)make")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    manifest_file = args.out / "manifest.json"
    manifest = json.loads(manifest_file.read_text(encoding="utf-8")) if manifest_file.is_file() else []
    names = args.only or ["vram", "Dataset004_Hippocampus", *SYNTHETIC]
    if "vram" in names:
        make_vram(args.out)
        names = [n for n in names if n != "vram"]
    with tempfile.TemporaryDirectory(prefix="autounet_golden_planning_") as tmp:
        for name in names:
            print(f"making {name} ...", flush=True)
            root = Path(tmp) / name
            runs = (make_hippocampus(root, args.out, workers=args.workers) if name == "Dataset004_Hippocampus"
                    else make_synthetic(name, SYNTHETIC[name], root, args.out))
            manifest = [m for m in manifest if m["dataset"] != name] + runs
    manifest.sort(key=lambda m: (m["dataset"], m["plans_file"]))
    manifest_file.write_text(json.dumps(manifest, indent=2) + "\n")
    print(f"wrote {len(manifest)} runs to {manifest_file}")


if __name__ == "__main__":
    main()
