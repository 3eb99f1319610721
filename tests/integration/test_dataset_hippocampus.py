"""Import + verify on the real Hippocampus folder through the CLI (``autounet.cli.main``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from autounet.cli import main
from autounet.io import read_images, read_segmentation, write_image, write_segmentation

pytestmark = pytest.mark.integration

LABEL_FLAGS = ["--label", "background=0", "--label", "Anterior=1", "--label", "Posterior=2"]


def _import(shared: Path, ws: Path, *extra: str) -> int:
    hippo = shared / "Hippocampus"
    return main(["import", "--workspace", str(ws), "--images", str(hippo / "images"), "--labels",
                 str(hippo / "labels"), "--id", "4", "--name", "Hippocampus", "--channel", "MRI", *LABEL_FLAGS,
                 *extra])


def test_import_then_verify_hippocampus(shared_datasets: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    ws = tmp_path / "ws"
    assert _import(shared_datasets, ws, "--link") == 0
    out = capsys.readouterr().out
    assert "imported 208 cases" in out
    for name in ("hippocampus_010.nii.gz", "hippocampus_118.nii.gz", "hippocampus_281.nii.gz"):
        assert name in out
    assert "skipped 3 unpaired file(s)" in out
    root = ws / "raw" / "Dataset004_Hippocampus"
    assert len(list((root / "imagesTr").iterdir())) == 208
    spec = json.loads((root / "dataset.json").read_text(encoding="utf-8"))
    assert spec["numTraining"] == 208 and spec["labels"] == {"background": 0, "Anterior": 1, "Posterior": 2}

    report = tmp_path / "report.json"
    assert main(["verify", "--workspace", str(ws), "4", "--json", str(report)]) == 0
    data = json.loads(report.read_text(encoding="utf-8"))
    assert data["ok"] is True and data["n_cases"] == 208 and data["problems"] == []


def test_strict_import_refuses_hippocampus(shared_datasets: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    assert _import(shared_datasets, tmp_path / "ws", "--strict") == 1
    err = capsys.readouterr().err
    assert "--strict: 3 unpaired" in err and "hippocampus_281.nii.gz" in err
    assert not (tmp_path / "ws" / "raw" / "Dataset004_Hippocampus").exists()


def test_hippocampus_case_round_trip_is_lossless(shared_datasets: Path, tmp_path: Path) -> None:
    src_img = shared_datasets / "Hippocampus" / "images" / "hippocampus_001.nii.gz"
    src_seg = shared_datasets / "Hippocampus" / "labels" / "hippocampus_001.nii.gz"
    img, geom = read_images([src_img])
    seg, seg_geom = read_segmentation(src_seg)
    write_image(img.astype(np.uint8), tmp_path / "img.nii.gz", geom)
    write_segmentation(seg, tmp_path / "seg.nii.gz", seg_geom)
    img2, geom2 = read_images([tmp_path / "img.nii.gz"])
    seg2, seg_geom2 = read_segmentation(tmp_path / "seg.nii.gz")
    np.testing.assert_array_equal(img2, img)
    np.testing.assert_array_equal(seg2, seg)
    assert geom2 == geom and seg_geom2 == seg_geom


def test_label_281_paired_with_an_image_is_caught_by_verify(shared_datasets: Path, tmp_path: Path,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    """Had 281 been paired with a hippocampus image, verify names the geometry problem."""
    hippo = shared_datasets / "Hippocampus"
    images, labels = tmp_path / "images", tmp_path / "labels"
    images.mkdir()
    labels.mkdir()
    for case in ("hippocampus_001", "hippocampus_003"):
        (images / f"{case}.nii.gz").symlink_to(hippo / "images" / f"{case}.nii.gz")
    (labels / "hippocampus_001.nii.gz").symlink_to(hippo / "labels" / "hippocampus_281.nii.gz")
    (labels / "hippocampus_003.nii.gz").symlink_to(hippo / "labels" / "hippocampus_003.nii.gz")
    ws = tmp_path / "ws"
    assert main(["import", "--workspace", str(ws), "--images", str(images), "--labels", str(labels), "--id", "5",
                 "--name", "Mixed", "--channel", "MRI", *LABEL_FLAGS]) == 0
    capsys.readouterr()
    assert main(["verify", "--workspace", str(ws), "5", "-j", "1"]) == 1
    out = capsys.readouterr().out
    assert "case hippocampus_001" in out and "shape (94, 512, 512) != (35, 51, 35)" in out
    assert "hippocampus_003" not in out.replace("2 cases", "")
