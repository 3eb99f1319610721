"""Real data through the public CLI: import Hippocampus cases, `plan --preprocess`, read patches from the store."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from autounet.cli import main as cli_main
from autounet.preprocessing import CaseStore
from autounet.schemas.plans import load_plans
from autounet.workspace import Workspace

pytestmark = [pytest.mark.integration, pytest.mark.slow]
N_CASES = 16


def test_plan_and_preprocess_hippocampus(shared_datasets: Path, tmp_path: Path) -> None:
    source = shared_datasets / "Hippocampus"
    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    labels.mkdir()
    paired = {p.name for p in (source / "labels").glob("*.nii.gz")} & {p.name for p in (source / "images").iterdir()}
    cases = sorted(paired)[:N_CASES]
    for name in cases:
        shutil.copy(source / "images" / name, images / name)
        shutil.copy(source / "labels" / name, labels / name)
    root = tmp_path / "ws"
    common = ["--workspace", str(root), "--quiet"]
    assert cli_main(["import", "--images", str(images), "--labels", str(labels), "--id", "4", "--name",
                     "Hippocampus", "--channel", "MRI", "--label", "background=0", "--label", "anterior=1",
                     "--label", "posterior=2", *common]) == 0
    assert cli_main(["plan", "4", "-c", "3d_fullres", "2d", "--preprocess", "-j", "2", *common]) == 0

    ws = Workspace.at(root)
    plans = load_plans(ws.plans_file("Dataset004_Hippocampus", "nnUNetPlans"))
    for configuration in ("3d_fullres", "2d"):
        config = plans.configuration(configuration)
        store = CaseStore(ws.preprocessed_data("Dataset004_Hippocampus", config.data_identifier))
        assert len(store.case_ids()) == N_CASES
        case = store.case_ids()[0]
        props = store.properties(case)
        assert props.configuration == configuration and set(props.class_locations) == {1, 2}
        data, seg = store.load(case)
        assert data.dtype == np.float32 and seg.dtype == np.int16 and np.isfinite(data).all()
        assert set(np.unique(seg)) <= {-1, 0, 1, 2}
        patch = tuple(slice(0, min(p, s)) for p, s in zip((1, *config.patch_size)[-3:], data.shape[1:]))
        patch_data, patch_seg = store.read_patch(case, patch)
        np.testing.assert_array_equal(patch_data, data[(slice(None), *patch)])
    assert len(list(ws.gt_segmentations("Dataset004_Hippocampus").iterdir())) == N_CASES
    # a second run finds everything up to date
    assert cli_main(["preprocess", "4", "-c", "3d_fullres", *common]) == 0
