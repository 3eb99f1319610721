"""run(): every labelled case into the store, skipping up-to-date cases, redoing changed ones, ground truth copied."""

from __future__ import annotations

import os

import numpy as np

from autounet.io import read_images, read_segmentation
from autounet.labels import LabelSpec
from autounet.preprocessing import CaseStore, preprocess_case, run
from autounet.preprocessing.store import case_files


def test_run_skip_redo_and_clean(tmp_workspace, synthetic_raw, make_plans) -> None:
    raw = synthetic_raw(n_cases=3)
    plans = make_plans(spacing=(2.5, 1.2, 1.2), patch_size=(8, 16, 16))
    summaries = run(tmp_workspace, raw.name, plans, ["2d", "3d_fullres"], workers=1)
    assert [s.configuration for s in summaries] == ["2d", "3d_fullres"]
    assert all(len(s.processed) == 3 and not s.skipped for s in summaries)
    folder = tmp_workspace.preprocessed_data(raw.name, "Plans_3d_fullres")
    store = CaseStore(folder)
    assert store.case_ids() == ["case_000", "case_001", "case_002"]

    # stored arrays are exactly what preprocess_case returns for the case
    labels = LabelSpec.from_labels({"background": 0, "ellipsoid": 1, "tube": 2})
    images, geometry = read_images([raw / "imagesTr" / "case_001_0000.nii.gz"])
    seg, _ = read_segmentation(raw / "labelsTr" / "case_001.nii.gz")
    expected = preprocess_case(images, seg, geometry, plans, "3d_fullres", labels=labels, case_id="case_001")
    data, stored_seg = store.load("case_001")
    np.testing.assert_array_equal(data, expected.data)
    np.testing.assert_array_equal(stored_seg, expected.seg)
    for key, coords in expected.properties.class_locations.items():
        np.testing.assert_array_equal(store.properties("case_001").class_locations[key], coords)

    gt = tmp_workspace.gt_segmentations(raw.name)
    assert sorted(p.name for p in gt.iterdir()) == [f"case_00{i}.nii.gz" for i in range(3)]

    # a re-run with the same plans does nothing; a damaged case is redone
    data_file = case_files(folder, "case_002")["data"]
    data_file.unlink()
    again = run(tmp_workspace, raw.name, plans, ["3d_fullres"], workers=1)[0]
    assert again.processed == ["case_002"] and len(again.skipped) == 2

    # changed spacing -> every case is redone; --clean redoes everything
    mtime = os.stat(case_files(folder, "case_000")["properties"]).st_mtime_ns
    changed = make_plans(spacing=(2.0, 1.2, 1.2), patch_size=(8, 16, 16))
    assert len(run(tmp_workspace, raw.name, changed, ["3d_fullres"], workers=1)[0].processed) == 3
    assert os.stat(case_files(folder, "case_000")["properties"]).st_mtime_ns != mtime
    assert len(run(tmp_workspace, raw.name, changed, ["3d_fullres"], workers=1, clean=True)[0].processed) == 3


def test_cascade_shares_fullres_data_and_stale_cases_go(tmp_workspace, synthetic_raw, make_plans) -> None:
    raw = synthetic_raw(n_cases=2)
    plans = make_plans(with_2d=False, extra={})
    plans.configurations["3d_cascade_fullres"] = {"inherits_from": "3d_fullres", "previous_stage": "3d_lowres"}
    summaries = run(tmp_workspace, raw.name, plans, ["3d_fullres", "3d_cascade_fullres"], workers=1)
    assert [s.configuration for s in summaries] == ["3d_fullres"]
    folder = summaries[0].folder
    (folder / "old_case.json").write_text("{}")
    case_files(folder, "old_case")["data"].write_bytes(b"x")
    run(tmp_workspace, raw.name, plans, ["3d_fullres"], workers=1)
    assert not (folder / "old_case.json").exists() and not case_files(folder, "old_case")["data"].exists()


def test_parallel_run_matches_serial(tmp_workspace, synthetic_raw, make_plans) -> None:
    raw = synthetic_raw(n_cases=3)
    plans = make_plans(with_2d=False)
    summary = run(tmp_workspace, raw.name, plans, ["3d_fullres"], workers=2)[0]
    assert sorted(summary.processed) == ["case_000", "case_001", "case_002"]
    parallel = {c: CaseStore(summary.folder).load(c) for c in summary.processed}
    run(tmp_workspace, raw.name, plans, ["3d_fullres"], workers=1, clean=True)
    for case, (data, seg) in parallel.items():
        d, s = CaseStore(summary.folder).load(case)
        np.testing.assert_array_equal(d, data)
        np.testing.assert_array_equal(s, seg)
