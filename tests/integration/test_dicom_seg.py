"""DICOM SEG out (predict --output-format dicom-seg) and in (import of SEG label files) on real DICOM data."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("highdicom")

from autounet.errors import ImageIOError
from autounet.inference import Predictor
from autounet.inference.testing import tiny_dataset, tiny_plans, write_random_model
from autounet.io import read_images, read_segmentation
from autounet.io.dicom_seg import read_dicom_seg, write_dicom_seg


def _model(tmp_path: Path) -> Path:
    # coarse spacing keeps the 512x512 CT quick; random weights give a mixed label map (what the test needs)
    plans = tiny_plans(spacing=(4.0, 4.0, 4.0))
    labels = {"background": 0, "liver": 1, "tumour": 2}
    return write_random_model(tmp_path / "results", plans, tiny_dataset(labels=labels), "3d_fullres", seed=3)


def _series(shared_datasets: Path, which: str) -> Path:
    if which == "ct":
        return shared_datasets / "TotalSegmentator_example" / "example_ct_dicom"
    study = shared_datasets / "BrainTumorProgression_DICOM" / "PGBM-003" / "03-29-1995-Mr Rcbv Sequence-Fh-44184"
    return next(study.glob("*T1post*"))


@pytest.mark.parametrize("which", [pytest.param("ct", marks=pytest.mark.slow), "mr"])
def test_predict_dicom_seg_equals_nifti(shared_datasets, tmp_path, which):
    import highdicom as hd

    series = _series(shared_datasets, which)
    src = tmp_path / "in" / "case1"
    shutil.copytree(series, src)
    pred = Predictor.from_model_dir(_model(tmp_path), device="cpu", use_mirroring=False)
    assert pred.predict_folder(tmp_path / "in", tmp_path / "nii").ok
    report = pred.predict_folder(tmp_path / "in", tmp_path / "seg", output_format="dicom-seg")
    assert report.ok and report.written == ["case1"]
    nifti, ngeom = read_segmentation(tmp_path / "nii" / "case1.nii.gz")
    assert len(np.unique(nifti)) > 1  # a real mixed label map, not an empty one
    back, _ = read_dicom_seg(tmp_path / "seg" / "case1.dcm", reference=src)
    np.testing.assert_array_equal(back, nifti)
    standalone, sgeom = read_segmentation(tmp_path / "seg" / "case1.dcm")  # its own frames' grid
    np.testing.assert_array_equal(standalone, nifti)
    np.testing.assert_allclose(sgeom.origin, ngeom.origin, atol=1e-3)
    np.testing.assert_allclose(sgeom.spacing, ngeom.spacing, atol=1e-4)
    seg = hd.seg.segread(str(tmp_path / "seg" / "case1.dcm"))
    assert [seg.get_segment_description(n).segment_label for n in seg.get_segment_numbers()] == ["liver", "tumour"]
    _, sgeom_in = read_images([src])
    assert seg.ReferencedSeriesSequence[0].SeriesInstanceUID == sgeom_in.extras["series_uid"]
    import pydicom

    first = pydicom.dcmread(min(src.iterdir()), stop_before_pixels=True)
    assert seg.StudyInstanceUID == first.StudyInstanceUID


def test_dicom_seg_output_needs_dicom_input(tmp_path, rng):
    from autounet.errors import UsageError
    from autounet.io import ImageGeometry, write_image

    (tmp_path / "in").mkdir()
    write_image(rng.normal(size=(1, 8, 12, 12)).astype(np.float32), tmp_path / "in" / "a_0000.nii.gz",
                ImageGeometry(spacing=(4.0, 4.0, 4.0)))
    pred = Predictor.from_model_dir(_model(tmp_path), device="cpu", use_mirroring=False)
    with pytest.raises(UsageError, match="needs DICOM series inputs; case a"):
        pred.predict_folder(tmp_path / "in", tmp_path / "out", output_format="dicom-seg")


def test_reading_dcmqi_segs(shared_datasets):
    root = shared_datasets / "dcmqi_DICOM_SEG"
    liver, geom = read_segmentation(root / "liver.dcm")
    ref, rgeom = read_segmentation(root / "liver_seg.nrrd")
    np.testing.assert_array_equal(liver, ref)
    np.testing.assert_allclose(geom.origin, rgeom.origin, atol=1e-3)
    np.testing.assert_allclose(geom.direction, rgeom.direction, atol=1e-6)
    on_series, _ = read_dicom_seg(root / "liver.dcm", reference=root / "ct-3slice")
    np.testing.assert_array_equal(on_series, ref)
    noppv, _ = read_segmentation(root / "sparse-labelmap-noppv.dcm")  # the Label Map SEG SOP class
    np.testing.assert_array_equal(noppv, read_segmentation(root / "sparse_labelmap_noppv_seg.nrrd")[0])
    with pytest.raises(ImageIOError, match="overlapping segments"):
        read_segmentation(root / "partial_overlaps.dcm")


def test_segment_names_pick_label_values(shared_datasets, tmp_path):
    root = shared_datasets / "dcmqi_DICOM_SEG"
    seg, geom = read_dicom_seg(root / "liver.dcm", labels={"background": 0, "spleen": 1, "liver": 4})
    assert set(np.unique(seg)) == {0, 4} and geom.extras["segments"] == {"4": "Liver"}


def test_import_accepts_dicom_seg_labels(shared_datasets, tmp_path):
    from autounet.cli import main
    from autounet.dataset import open_raw_dataset

    root = shared_datasets / "dcmqi_DICOM_SEG"
    (tmp_path / "images").mkdir()
    (tmp_path / "labels").mkdir()
    shutil.copytree(root / "ct-3slice", tmp_path / "images" / "ct1")
    shutil.copy(root / "liver.dcm", tmp_path / "labels" / "ct1.dcm")
    ws = tmp_path / "ws"
    assert main(["import", "--workspace", str(ws), "--images", str(tmp_path / "images"), "--labels",
                 str(tmp_path / "labels"), "--id", "77", "--name", "LiverSeg", "--channel", "CT", "--label",
                 "background=0", "--label", "liver=1", "--file-ending", ".nii.gz"]) == 0
    ds = open_raw_dataset(ws / "raw" / "Dataset077_LiverSeg")
    label, _ = read_segmentation(ds.cases["ct1"].label)
    np.testing.assert_array_equal(label, read_segmentation(root / "liver_seg.nrrd")[0])
    # overlapping segments: one clear error naming the file
    shutil.copy(root / "partial_overlaps.dcm", tmp_path / "labels" / "ct1.dcm")
    assert main(["import", "--workspace", str(ws), "--images", str(tmp_path / "images"), "--labels",
                 str(tmp_path / "labels"), "--id", "78", "--name", "Overlap", "--channel", "CT", "--label",
                 "background=0", "--label", "liver=1", "--file-ending", ".nii.gz"]) != 0


def test_write_dicom_seg_refuses_unknown_values(shared_datasets, tmp_path):
    src = _series(shared_datasets, "ct")
    _, geom = read_images([src])
    seg = np.zeros((20, 512, 512), np.uint8)
    seg[3, 10:20, 10:20] = 7
    with pytest.raises(ImageIOError, match=r"label values \[7\] have no segment"):
        write_dicom_seg(seg, tmp_path / "x.dcm", source_files=geom.extras["files"], segment_labels={1: "liver"})

