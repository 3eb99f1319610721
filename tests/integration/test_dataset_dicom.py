"""Real DICOM input: series folders as channels and labels (Brain-Tumor-Progression), and a CT series with NRRD
label maps on its grid (dcmqi)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from autounet.dataset import open_raw_dataset, verify
from autounet.io import read_images, read_segmentation, reader_for

pytestmark = pytest.mark.integration


def _series(study: Path, kind: str) -> Path:
    (folder,) = [p for p in study.iterdir() if f"-{kind}-" in p.name]
    return folder


def test_brain_tumor_series_as_a_two_channel_dataset(shared_datasets: Path, tmp_path: Path) -> None:
    studies = sorted(p for p in (shared_datasets / "BrainTumorProgression_DICOM").glob("PGBM-*/*") if p.is_dir())
    assert len(studies) == 4
    listing = {f"{s.parent.name}_{i}": {"images": [str(_series(s, "T1post")), str(_series(s, "FLAIRreg"))],
                                        "label": str(_series(s, "MaskTumor"))} for i, s in enumerate(studies)}
    root = tmp_path / "Dataset020_BrainDicom"
    root.mkdir()
    (root / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "T1post", "1": "FLAIR"}, "labels": {"background": 0, "tumour": 1},
        "numTraining": 4, "file_ending": ".dcm", "dataset": listing}))
    ds = open_raw_dataset(root, allow_external=True)  # the listing names the shared DICOM files where they are
    assert ds.reader_name() == "dicom_series"
    report = verify(ds, workers=1, allow_external=True)
    assert report.ok, report.format()

    case = ds.cases["PGBM-008_3"]
    images, geom = read_images(case.images, reader="dicom_series")
    seg, seg_geom = read_segmentation(case.label)
    assert images.shape[0] == 2 and images.shape[1:] == seg.shape[1:] == (22, 320, 280)
    np.testing.assert_allclose(geom.spacing, (6.5, 0.6875, 0.6875), rtol=1e-3)
    np.testing.assert_allclose(seg_geom.origin, geom.origin, atol=1e-3)
    assert set(np.unique(seg)) == {0, 1}


def test_ct_series_with_nrrd_label_maps(shared_datasets: Path) -> None:
    base = shared_datasets / "dcmqi_DICOM_SEG"
    assert reader_for("", example=base / "ct-3slice") == "dicom_series"
    ct, geom = read_images(base / "ct-3slice")
    assert ct.shape == (1, 3, 512, 512)
    np.testing.assert_allclose(geom.spacing[1:], (0.811, 0.811), atol=1e-3)
    assert ct.min() < -1000  # rescaled to Hounsfield units
    liver, liver_geom = read_segmentation(base / "liver_seg.nrrd")
    assert liver.shape == ct.shape and set(np.unique(liver)) == {0, 1}
    assert int((liver == 1).sum()) == 107098
    np.testing.assert_allclose(liver_geom.origin, geom.origin, atol=1e-2)
    np.testing.assert_allclose(liver_geom.direction, geom.direction, atol=1e-4)
