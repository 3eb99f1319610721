"""Configurations with identical preprocessing (2d and 3d_fullres of isotropic data) share one preprocessing per
case and hard-link small arrays; the stored cases equal separate processing."""

from __future__ import annotations

import importlib

import numpy as np
import pytest

from autounet.dataset import open_raw_dataset
from autounet.inference.testing import tiny_plans
from autounet.io import read_images, read_segmentation
from autounet.labels import LabelSpec
from autounet.preprocessing.pipeline import preprocess_case
from autounet.preprocessing.store import CaseStore, case_files
from autounet.testing import make_synthetic_dataset
from autounet.workspace import Workspace

preprocess = importlib.import_module("autounet.preprocessing.run")
DATASET = "Dataset900_Tiny"


@pytest.mark.parametrize(("z_spacing", "shared"), [(1.0, True), (2.0, False)])
def test_identical_configurations_share_and_equal_separate_processing(tmp_path, z_spacing, shared) -> None:
    ws = Workspace.at(tmp_path / "ws").ensure()
    raw = make_synthetic_dataset(ws.raw / DATASET, n_cases=3, shape=(6, 16, 16), spacing=(z_spacing, 1.0, 1.0))
    plans = tiny_plans()
    summaries = preprocess.run(ws, DATASET, plans, ["3d_fullres", "2d"], workers=1)
    assert [sorted(s.processed) for s in summaries] == [["case_000", "case_001", "case_002"]] * 2
    labels = LabelSpec.from_dataset_spec(open_raw_dataset(raw, ws).spec)
    for name in ("3d_fullres", "2d"):
        folder = ws.preprocessed_data(DATASET, plans.configuration(name).data_identifier)
        store = CaseStore(folder)
        for case in store.case_ids():
            images, geometry = read_images([raw / "imagesTr" / f"{case}_0000.nii.gz"])
            seg = read_segmentation(raw / "labelsTr" / f"{case}.nii.gz")[0]
            expected = preprocess_case(images, seg, geometry, plans, name, labels=labels, case_id=case)
            data, stored_seg = store.load(case)
            np.testing.assert_array_equal(data, expected.data)
            np.testing.assert_array_equal(stored_seg, expected.seg)
            props = store.properties(case)
            assert props.configuration == name
            assert props.plans_sha256 == preprocess.preprocessing_hash(plans, name, labels)
            for key, where in expected.properties.class_locations.items():
                np.testing.assert_array_equal(props.class_locations[key], where)
    one = case_files(ws.preprocessed_data(DATASET, "tiny_3d"), "case_000")["data"].stat()
    two = case_files(ws.preprocessed_data(DATASET, "tiny_2d"), "case_000")["data"].stat()
    assert (one.st_ino == two.st_ino) is shared
    again = preprocess.run(ws, DATASET, plans, ["3d_fullres", "2d"], workers=1)
    assert all(s.processed == [] and len(s.skipped) == 3 for s in again)
