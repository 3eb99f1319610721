"""Two-way model compatibility with the reference (nnunetv2 2.8.1): voxel agreement on the same cases.

Everything lives under ``--root`` (default ``/tmp/autounet_compat_bench``); stages already done are reused.

1. **autounet-trained, run by the reference.** Hippocampus is imported into an autounet workspace (links to
   ``../shared/datasets/Hippocampus``), fingerprinted, planned and preprocessed (3d_fullres), and fold 0 is trained
   for a tiny schedule (``--epochs``, ``--iters``, batch 2, no final validation). The model folder, untouched, is
   then run by ``nnUNetv2_predict_from_modelfolder`` and by ``autounet predict -m`` on ``--cases`` images.
2. **reference-trained, run by autounet.** The reference plans and preprocesses the same raw dataset
   (``nnUNetv2_plan_and_preprocess -c 3d_fullres``) and trains its own ``nnUNetTrainer`` on fold 0 on the CPU with
   the same tiny schedule (the trainer's ``num_epochs`` / ``num_iterations_per_epoch`` / batch size set on the
   instance before ``run_training``; no final validation). Its folder is run by ``nnUNetv2_predict_from_modelfolder``
   and by ``autounet predict -m``.
3. **Packages both ways.** The reference model is evaluated on the predicted cases (``nnUNetv2_evaluate_folder``
   writes ``fold_0/validation/summary.json``, which ``nnUNetv2_export_model_to_zip`` requires), zipped with
   ``nnUNetv2_export_model_to_zip`` and installed with ``autounet install-model``; the autounet model is zipped with
   ``autounet export-model`` and installed with ``nnUNetv2_install_pretrained_model_from_zip``. Each installed
   model predicts the cases again and must equal the folder's prediction.

Prints, per direction and with/without mirroring: voxel agreement (fraction of equal voxels over all cases), the
per-label Dice between the two tools' segmentations and the foreground fraction (so that an all-background model
cannot pass unnoticed). The tiny schedule makes weak models; the point is equal computation, not accuracy.

Usage: ``python benchmarks/compat_bench.py [--cases 10] [--epochs 2 --iters 10] [--mirroring] [--autounet-model DIR]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference import (
    reference_env,
    reference_python,
    run_reference,
    run_reference_python,
)

REPO = Path(__file__).resolve().parents[1]
HIPPO = REPO.parent / "shared" / "datasets" / "Hippocampus"
DATASET = "Dataset004_Hippocampus"
MODEL = "nnUNetTrainer__nnUNetPlans__3d_fullres"


def autounet(*args: str, root: Path) -> None:
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    cmd = [sys.executable, "-m", "autounet", args[0], "--quiet", "--no-progress", "--workspace", str(root / "au"),
           *args[1:]]
    subprocess.run(cmd, check=True, env=env)


def train_autounet(root: Path, *, epochs: int, iters: int, trained: Path | None = None) -> Path:
    """The autounet model of the bench: trained here on the tiny schedule, or ``trained`` (a longer-trained
    Hippocampus 3d_fullres folder with ``fold_0``) copied in as it is."""
    model = root / "au" / "results" / DATASET / MODEL
    if (model / "fold_0" / "checkpoint_final.pth").is_file():
        return model
    if trained is not None:
        _import_hippocampus(root)
        shutil.copytree(trained, model, ignore=shutil.ignore_patterns("validation", "checkpoint_latest.pth",
                                                                      "checkpoint_best.pth"))
        return model
    _import_hippocampus(root)
    autounet("fingerprint", "4", root=root)
    autounet("plan", "4", "-c", "3d_fullres", root=root)
    autounet("preprocess", "4", "-c", "3d_fullres", root=root)
    autounet("train", "4", "3d_fullres", "0", "--epochs", str(epochs), "--iters-per-epoch", str(iters),
             "--val-iters", "2", "--batch-size", "2", "--no-val", "--seed", "0", root=root)
    return model


def _import_hippocampus(root: Path) -> None:
    if not (root / "au" / "raw" / DATASET).is_dir():
        autounet("import", "--images", str(HIPPO / "images"), "--labels", str(HIPPO / "labels"), "--id", "4",
                 "--name", "Hippocampus", "--channel", "MRI", "--label", "background=0", "--label", "Anterior=1",
                 "--label", "Posterior=2", "--link", root=root)


TRAIN_CODE = r"""
import torch
from batchgenerators.utilities.file_and_folder_operations import join, load_json
from nnunetv2.paths import nnUNet_preprocessed
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

pre = join(nnUNet_preprocessed, "Dataset004_Hippocampus")
plans = load_json(join(pre, "nnUNetPlans.json"))
plans["continue_training"] = False  # what nnUNetv2_train's get_trainer_from_args adds
trainer = nnUNetTrainer(plans, "3d_fullres", 0, load_json(join(pre, "dataset.json")), device=torch.device("cpu"))
trainer.num_epochs = EPOCHS
trainer.num_iterations_per_epoch = ITERS
trainer.num_val_iterations_per_epoch = 2
trainer.configuration_manager.configuration["batch_size"] = 2
trainer.run_training()
print(trainer.output_folder)
"""


def train_reference(root: Path, *, epochs: int, iters: int) -> Path:
    model = root / "ref" / "results" / DATASET / MODEL
    if (model / "fold_0" / "checkpoint_final.pth").is_file():
        return model
    raw = root / "ref" / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    if not (raw / DATASET).exists():
        (raw / DATASET).symlink_to(root / "au" / "raw" / DATASET)
    run_reference(["nnUNetv2_plan_and_preprocess", "-d", "4", "-c", "3d_fullres", "-np", "2", "-npfp", "2"],
                  root / "ref", threads=2)
    run_reference_python(TRAIN_CODE.replace("EPOCHS", str(epochs)).replace("ITERS", str(iters)), root / "ref",
                         threads=2)
    return model


def cases(root: Path, n: int) -> Path:
    images = sorted((root / "au" / "raw" / DATASET / "imagesTr").glob("*_0000.nii.gz"))[-n:]
    folder = root / f"cases_{n}"
    if not folder.is_dir():
        folder.mkdir(parents=True)
        for img in images:
            (folder / img.name).symlink_to(img.resolve())
    return folder


def predict_reference(model: Path, inputs: Path, out: Path, root: Path, *, mirroring: bool) -> float:
    if out.is_dir():
        shutil.rmtree(out)
    cmd = ["nnUNetv2_predict_from_modelfolder", "-i", str(inputs), "-o", str(out), "-m", str(model), "-f", "0",
           "-device", "cpu", "-npp", "1", "-nps", "1"] + ([] if mirroring else ["--disable_tta"])
    t0 = time.perf_counter()
    run_reference(cmd, root / "ref", threads=2)
    return time.perf_counter() - t0


def predict_autounet(model: Path, inputs: Path, out: Path, root: Path, *, mirroring: bool) -> float:
    if out.is_dir():
        shutil.rmtree(out)
    t0 = time.perf_counter()
    autounet("predict", "-i", str(inputs), "-o", str(out), "-m", str(model), "-f", "0", "--device", "cpu",
             *([] if mirroring else ["--no-tta"]), root=root)
    return time.perf_counter() - t0


def agreement(a: Path, b: Path) -> dict[str, object]:
    import nibabel as nib

    equal = total = 0
    inter: dict[int, int] = {}
    sums: dict[int, int] = {}
    fg = 0
    files = sorted(p.name for p in a.glob("*.nii.gz"))
    if not files or files != sorted(p.name for p in b.glob("*.nii.gz")):
        raise RuntimeError(f"{a} and {b} hold different cases")
    for name in files:
        x = np.asarray(nib.load(a / name).dataobj)
        y = np.asarray(nib.load(b / name).dataobj)
        equal += int((x == y).sum())
        total += x.size
        fg += int((x > 0).sum())
        for label in (1, 2):
            inter[label] = inter.get(label, 0) + int(((x == label) & (y == label)).sum())
            sums[label] = sums.get(label, 0) + int((x == label).sum() + (y == label).sum())
    dice = {str(k): (2 * inter[k] / sums[k] if sums[k] else float("nan")) for k in inter}
    return {"cases": len(files), "equal_voxels": equal / total, "differing_voxels": total - equal,
            "dice_between_tools": dice, "foreground_fraction": fg / total}


def reference_zip_to_autounet(root: Path, ref_model: Path, ref_pred: Path, inputs: Path) -> dict[str, object]:
    """Reference zip -> autounet install-model -> predict; equal to predicting from the folder?"""
    summary = ref_model / "fold_0" / "validation" / "summary.json"
    if not summary.is_file():
        summary.parent.mkdir(parents=True, exist_ok=True)
        gt = root / "au" / "raw" / DATASET / "labelsTr"
        run_reference(["nnUNetv2_evaluate_folder", str(gt), str(ref_pred), "-djfile", str(ref_model / "dataset.json"),
                       "-pfile", str(ref_model / "plans.json"), "-o", str(summary), "--chill"], root / "ref", threads=2)
    zip_path = root / "ref_model.zip"
    if zip_path.exists():
        zip_path.unlink()
    run_reference(["nnUNetv2_export_model_to_zip", "-d", "4", "-o", str(zip_path), "-c", "3d_fullres", "-f", "0"],
                  root / "ref", threads=2)
    ws = root / "au_installed"
    shutil.rmtree(ws, ignore_errors=True)
    env = dict(os.environ, PYTHONPATH=str(REPO / "src"))
    subprocess.run([sys.executable, "-m", "autounet", "install-model", str(zip_path), "--workspace", str(ws)],
                   check=True, env=env)
    out = root / "pred_ref_zip_by_autounet"
    predict_autounet(ws / "results" / DATASET / MODEL, inputs, out, root, mirroring=False)
    return agreement(out, root / "pred_ref_model_by_autounet_nomirror")


def autounet_zip_to_reference(root: Path, inputs: Path) -> dict[str, object]:
    """autounet export-model -> nnUNetv2_install_pretrained_model_from_zip -> reference predict; equal?"""
    zip_path = root / "au_model.zip"
    if zip_path.exists():
        zip_path.unlink()
    autounet("export-model", "-d", "4", "-o", str(zip_path), "-c", "3d_fullres", "-f", "0", root=root)
    target = root / "ref_installed"
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    env = reference_env(target)
    subprocess.run([str(reference_python().parent / "nnUNetv2_install_pretrained_model_from_zip"), str(zip_path)],
                   check=True, env=env)
    out = root / "pred_au_zip_by_reference"
    predict_reference(target / "results" / DATASET / MODEL, inputs, out, root, mirroring=False)
    return agreement(out, root / "pred_au_model_by_reference_nomirror")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("/tmp/autounet_compat_bench"))
    parser.add_argument("--cases", type=int, default=10)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--iters", type=int, default=10)
    parser.add_argument("--mirroring", action="store_true", help="also compare with test-time mirroring")
    parser.add_argument("--skip-zips", action="store_true", help="skip the package round trips")
    parser.add_argument("--autounet-model", type=Path, default=None,
                        help="a longer-trained autounet Hippocampus 3d_fullres folder to use instead of training one "
                             "on the tiny schedule (its foreground makes the agreement meaningful)")
    args = parser.parse_args()
    root = args.root
    root.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    au_model = train_autounet(root, epochs=args.epochs, iters=args.iters, trained=args.autounet_model)
    t_au = time.perf_counter() - t0
    ref_model = train_reference(root, epochs=args.epochs, iters=args.iters)
    t_ref = time.perf_counter() - t0 - t_au
    inputs = cases(root, args.cases)
    schedule = f"{args.epochs} epochs x {args.iters} iterations"
    results: dict[str, object] = {"cases": args.cases, "schedule": schedule if args.autounet_model is None else
                                  f"autounet: {args.autounet_model}; reference: {schedule}",
                                  "train_seconds": {"autounet": round(t_au, 1), "reference": round(t_ref, 1)}}
    for mirroring in ([False, True] if args.mirroring else [False]):
        tag = "mirror" if mirroring else "nomirror"
        for name, model in (("au_model", au_model), ("ref_model", ref_model)):
            a = root / f"pred_{name}_by_autounet_{tag}"
            r = root / f"pred_{name}_by_reference_{tag}"
            sa = predict_autounet(model, inputs, a, root, mirroring=mirroring)
            sr = predict_reference(model, inputs, r, root, mirroring=mirroring)
            results[f"{name} ({tag})"] = {**agreement(a, r), "seconds": {"autounet": round(sa, 1),
                                                                        "reference": round(sr, 1)}}
    if not args.skip_zips:
        results["reference zip installed by autounet vs folder"] = reference_zip_to_autounet(
            root, ref_model, root / "pred_ref_model_by_reference_nomirror", inputs)
        results["autounet zip installed by the reference vs folder"] = autounet_zip_to_reference(root, inputs)
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
