"""Killing `autounet preprocess` mid-run and re-running completes with every case correct."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from autounet.cli import main as cli_main
from autounet.io import read_images, read_segmentation
from autounet.labels import LabelSpec
from autounet.preprocessing import CaseStore, preprocess_case
from autounet.schemas.plans import load_plans
from autounet.testing import make_synthetic_dataset
from autounet.workspace import Workspace

pytestmark = pytest.mark.integration
DATASET = "Dataset997_Resume"
N_CASES = 10


def _cli(*args: str, root: Path) -> list[str]:
    return [sys.executable, "-m", "autounet", *args, "--workspace", str(root), "--quiet"]


def test_kill_and_rerun(tmp_path: Path) -> None:
    root = tmp_path / "ws"
    ws = Workspace.at(root).ensure()
    raw = make_synthetic_dataset(ws.raw / DATASET, n_cases=N_CASES, shape=(20, 64, 64), spacing=(3.0, 0.9, 0.9))
    assert cli_main(["plan", DATASET, "--workspace", str(root), "-j", "1", "--quiet"]) == 0
    plans = load_plans(ws.plans_file(DATASET, "nnUNetPlans"))
    folder = ws.preprocessed_data(DATASET, plans.configuration("3d_fullres").data_identifier)

    proc = subprocess.Popen(_cli("preprocess", DATASET, "-c", "3d_fullres", "-j", "1", root=root),
                            start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if folder.is_dir() and len(list(folder.glob("*.json"))) >= 2:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "preprocessing finished before it could be interrupted"
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()

    done = CaseStore(folder).case_ids()
    assert 2 <= len(done) < N_CASES
    for case in done:  # whatever is visible is complete
        data, seg = CaseStore(folder).load(case)
        assert np.isfinite(data).all() and seg.shape[1:] == data.shape[1:]

    rerun = subprocess.run(_cli("preprocess", DATASET, "-c", "3d_fullres", "-j", "2", root=root),
                           capture_output=True, text=True, encoding="utf-8", errors="replace", timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert not [p for p in folder.iterdir() if ".tmp" in p.name]

    store = CaseStore(folder)
    assert store.case_ids() == sorted(f"case_{i:03d}" for i in range(N_CASES))
    labels = LabelSpec.from_labels({"background": 0, "ellipsoid": 1, "tube": 2})
    for case in store.case_ids():
        images, geometry = read_images([raw / "imagesTr" / f"{case}_0000.nii.gz"])
        seg, _ = read_segmentation(raw / "labelsTr" / f"{case}.nii.gz")
        expected = preprocess_case(images, seg, geometry, plans, "3d_fullres", labels=labels, case_id=case)
        data, stored_seg = store.load(case)
        np.testing.assert_array_equal(data, expected.data)
        np.testing.assert_array_equal(stored_seg, expected.seg)
        assert store.properties(case).plans_sha256 == expected.properties.plans_sha256
