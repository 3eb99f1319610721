"""A model folder written by `autounet train` loads in the reference (nnunetv2 2.8.1) unchanged and predicts the
same segmentation; its `export-model` zip installs in the reference too. Needs the reference venv
(``benchmarks/reference.py``, ``.bench_cache/nnunetv2-2.8.1``); skipped without it."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

from autounet.cli import main
from autounet.io import read_segmentation
from autounet.testing import make_synthetic_dataset
from autounet.workspace import Workspace

REPO = Path(__file__).resolve().parents[2]
REF = REPO / ".bench_cache" / "nnunetv2-2.8.1"
MODEL = "nnUNetTrainer__nnUNetPlans__3d_fullres"


def _reference(cmd: list[str], root: Path) -> None:
    env = dict(os.environ)
    for var, sub in (("nnUNet_raw", "raw"), ("nnUNet_preprocessed", "pre"), ("nnUNet_results", "results")):
        (root / sub).mkdir(parents=True, exist_ok=True)
        env[var] = str(root / sub)
    env.update(OMP_NUM_THREADS="1", nnUNet_compile="f")
    subprocess.run([str(REF / "bin" / cmd[0]), *cmd[1:]], check=True, env=env, timeout=1200,
                   capture_output=True)


@pytest.mark.slow
@pytest.mark.integration
@pytest.mark.timeout(3600)
def test_autounet_model_folder_and_zip_predict_the_same_in_the_reference(tmp_path: Path) -> None:
    if not (REF / ".complete").is_file():
        pytest.skip("reference venv not installed (python benchmarks/reference.py)")
    ws = Workspace.at(tmp_path / "ws").ensure()
    make_synthetic_dataset(ws.raw / "Dataset990_Tiny", n_cases=6, shape=(16, 32, 32), spacing=(2.0, 1.0, 1.0),
                           seed=3)
    common = ["--workspace", str(tmp_path / "ws"), "--quiet"]
    for argv in (["fingerprint", "990"], ["plan", "990", "-c", "3d_fullres"], ["preprocess", "990", "-c", "3d_fullres"],
                 ["train", "990", "3d_fullres", "0", "--epochs", "2", "--iters-per-epoch", "4", "--val-iters", "1",
                  "--no-val", "--seed", "0", "--device", "cpu"]):
        assert main([*argv, *common]) == 0
    model = ws.model_dir("Dataset990_Tiny", "3d_fullres")
    images = ws.raw / "Dataset990_Tiny" / "imagesTr"
    assert main(["predict", "-i", str(images), "-o", str(tmp_path / "ours"), "-m", str(model), "-f", "0",
                 "-device", "cpu", "--disable_tta", *common]) == 0
    _reference(["nnUNetv2_predict_from_modelfolder", "-i", str(images), "-o", str(tmp_path / "theirs"), "-m",
                str(model), "-f", "0", "-device", "cpu", "--disable_tta", "-npp", "1", "-nps", "1",
                ], tmp_path / "r")
    assert main(["export-model", "-d", "990", "-o", str(tmp_path / "m.zip"), *common]) == 0
    _reference(["nnUNetv2_install_pretrained_model_from_zip", str(tmp_path / "m.zip")], tmp_path / "r")
    installed = tmp_path / "r" / "results" / "Dataset990_Tiny" / MODEL
    _reference(["nnUNetv2_predict_from_modelfolder", "-i", str(images), "-o", str(tmp_path / "zip"), "-m",
                str(installed), "-f", "0", "-device", "cpu", "--disable_tta", "-npp", "1", "-nps", "1"],
               tmp_path / "r")
    cases = sorted(p.name for p in (tmp_path / "ours").glob("*.nii.gz"))
    assert len(cases) == 6
    equal = total = 0
    for name in cases:
        ours, _ = read_segmentation(tmp_path / "ours" / name)
        theirs, _ = read_segmentation(tmp_path / "theirs" / name)
        from_zip, _ = read_segmentation(tmp_path / "zip" / name)
        np.testing.assert_array_equal(from_zip, theirs)  # the zip installed in the reference = the folder
        equal += int((ours == theirs).sum())
        total += theirs.size
    # End to end the reference accumulates tile logits in float16 on the CPU, so near-ties of a barely trained
    # model may flip; the network itself must compute the same logits (below, float32 both).
    assert equal / total >= 0.99, f"only {equal / total:.6f} of the voxels agree"
    x = np.random.default_rng(0).normal(size=(2, 1, *model_patch(model))).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    _reference(["python", "-c", NETWORK_CODE.format(model=str(model), x=str(tmp_path / "x.npy"),
                                                     y=str(tmp_path / "y.npy"))], tmp_path / "r")
    import torch

    from autounet.inference.model import load_model

    net = load_model(model, folds=[0], device=torch.device("cpu")).networks[0]
    with torch.no_grad():
        ours_logits = net(torch.from_numpy(x)).numpy()
    theirs_logits = np.load(tmp_path / "y.npy")
    np.testing.assert_allclose(ours_logits, theirs_logits, rtol=1e-4, atol=1e-4 * float(np.abs(theirs_logits).max()))


NETWORK_CODE = """
import numpy as np, torch
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
p = nnUNetPredictor(device=torch.device("cpu"), use_mirroring=False, perform_everything_on_device=False)
p.initialize_from_trained_model_folder({model!r}, use_folds=(0,), checkpoint_name="checkpoint_final.pth")
p.network.load_state_dict(p.list_of_parameters[0])
p.network.eval()
with torch.no_grad():
    np.save({y!r}, p.network(torch.from_numpy(np.load({x!r}))).numpy())
"""


def model_patch(model: Path) -> list[int]:
    import json

    plans = json.loads((model / "plans.json").read_text(encoding="utf-8"))
    return list(plans["configurations"]["3d_fullres"]["patch_size"])
