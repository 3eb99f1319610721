"""Make a tiny model folder trained by the reference (nnunetv2 2.8.1) for the safe-loading tests.

Run from the repository root with the project venv (about 1-2 minutes on 2 cores)::

    nice -n 10 .venv/bin/python benchmarks/golden/make_reference_checkpoint.py

Writes ``tests/data/golden/reference_model/`` = ``nnUNetTrainer__nnUNetPlans__2d/`` with ``plans.json``,
``dataset.json`` and ``fold_0/checkpoint_final.pth`` as the reference wrote them, plus ``case_0000.nii.gz`` (one
test image) and ``case_reference_prediction.nii.gz`` (the reference's ``nnUNetv2_predict`` of it with that
checkpoint, without mirroring) with its class probabilities ``case_reference_probabilities.npz``. The dataset is autounet's synthetic one at 4 x 8 x 8 voxels (so that the 2d network has two stages
and the checkpoint stays under 1 MB); the reference plans and preprocesses it with its own commands, then its
``nnUNetTrainer`` is trained without deep supervision (a two-stage network has a single output, for which the
reference's loss weights are 0/0) for one epoch of two iterations (one validation iteration) on the CPU, constructed as
``nnUNetv2_train`` does (``get_trainer_from_args``), and saves its checkpoint with its own ``save_checkpoint``.
With a folder argument the work folder is kept there and finished steps are reused.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO / "src"))
from autounet.testing import make_synthetic_dataset  # noqa: E402
from reference import run_reference, run_reference_python  # noqa: E402

OUT = REPO / "tests" / "data" / "golden" / "reference_model"
DATASET = "Dataset997_TinyRef"

TRAIN = """
import torch
from nnunetv2.run.run_training import get_trainer_from_args
torch.manual_seed(0)
trainer = get_trainer_from_args("%(ds)s", "2d", 0, "nnUNetTrainer", "nnUNetPlans", device=torch.device("cpu"))
# two stages give one output; the reference's deep-supervision weights are then 0/0 (NaN loss), so train without it
trainer.enable_deep_supervision = False
trainer.num_epochs = 1
trainer.num_iterations_per_epoch = 2
trainer.num_val_iterations_per_epoch = 1
trainer.run_training()
print(trainer.output_folder)
"""


def main() -> None:
    try:
        _make()
    except subprocess.CalledProcessError as exc:
        sys.exit(f"the reference failed:\n{exc.stdout}\n{exc.stderr}")


def _make() -> None:
    """With a folder argument, work there and reuse its preprocessed data (for reruns); else in a temp folder."""
    keep = Path(sys.argv[1]) if len(sys.argv) > 1 else None
    with tempfile.TemporaryDirectory() as tmp:
        root = keep or Path(tmp)
        raw = root / "raw" / DATASET
        if not (root / "preprocessed" / DATASET / "nnUNetPlans.json").is_file():
            make_synthetic_dataset(raw, n_cases=6, shape=(4, 8, 8), spacing=(1.0, 1.0, 1.0), seed=3, n_test=1)
            run_reference(["nnUNetv2_plan_and_preprocess", "-d", "997", "-c", "2d", "-np", "1", "-npfp", "1"],
                          root, threads=1)
        model = root / "results" / DATASET / "nnUNetTrainer__nnUNetPlans__2d"
        if not (model / "fold_0" / "checkpoint_final.pth").is_file():
            run_reference_python(TRAIN % {"ds": DATASET}, root, threads=1)
        pred = root / "reference_prediction"
        run_reference(["nnUNetv2_predict", "-i", str(raw / "imagesTs"), "-o", str(pred), "-d", "997", "-c", "2d",
                       "-f", "0", "-device", "cpu", "--disable_tta", "--save_probabilities", "-npp", "1", "-nps", "1"], root, threads=1)
        dest = OUT / model.name
        if dest.exists():
            shutil.rmtree(dest)  # the README beside it stays
        (dest / "fold_0").mkdir(parents=True)
        for name in ("plans.json", "dataset.json"):
            shutil.copy2(model / name, dest / name)
        shutil.copy2(model / "fold_0" / "checkpoint_final.pth", dest / "fold_0" / "checkpoint_final.pth")
        shutil.copy2(raw / "imagesTs" / "test_000_0000.nii.gz", OUT / "case_0000.nii.gz")
        shutil.copy2(pred / "test_000.nii.gz", OUT / "case_reference_prediction.nii.gz")
        shutil.copy2(pred / "test_000.npz", OUT / "case_reference_probabilities.npz")
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
