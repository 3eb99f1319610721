"""``autounet import`` and ``autounet convert-msd``: pairing, unpaired files, strict, link, conversion."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from autounet.cli import main
from autounet.dataset import convert_msd, import_folders, open_raw_dataset, verify
from autounet.errors import DatasetError, UsageError
from autounet.io import ImageGeometry, read_images, read_segmentation, write_image, write_segmentation
from autounet.workspace import Workspace

GEOM = ImageGeometry(spacing=(2.0, 1.0, 1.0), origin=(1.0, 2.0, 3.0))
LABELS = {"background": 0, "a": 1, "b": 2}


def _source(tmp_path: Path, cases: list[str], *, ending: str = ".nii.gz", channels: int = 0,
            extra_labels: tuple[str, ...] = ()) -> tuple[Path, Path]:
    """images/ and labels/ folders; ``channels`` > 0 names images CASE_XXXX."""
    rng = np.random.default_rng(0)
    images, labels = tmp_path / "src" / "images", tmp_path / "src" / "labels"
    for case in cases:
        for c in range(max(channels, 1)):
            suffix = f"_{c:04d}" if channels else ""
            write_image(rng.normal(size=(4, 6, 6)).astype(np.float32), images / f"{case}{suffix}{ending}", GEOM)
        write_segmentation(rng.integers(0, 3, (4, 6, 6)), labels / f"{case}{ending}", GEOM)
    for case in extra_labels:
        write_segmentation(np.zeros((4, 6, 6)), labels / f"{case}{ending}", GEOM)
    return images, labels


def test_import_pairs_skips_unpaired_and_verifies(tmp_path: Path) -> None:
    images, labels = _source(tmp_path, ["p1", "p2", "p3"], extra_labels=("lonely",))
    write_image(np.ones((4, 6, 6)), images / "nolabel.nii.gz", GEOM)
    ws = Workspace.at(tmp_path / "ws").ensure()
    result = import_folders(images, labels, workspace=ws, dataset_id=12, name="Test", channels=["MRI"],
                            label_values=LABELS)
    assert result.dataset_name == "Dataset012_Test" and result.cases == ("p1", "p2", "p3")
    assert sorted(str(u) for u in result.unpaired) == ["lonely.nii.gz: label without an image",
                                                       "nolabel.nii.gz: image without a label"]
    ds = open_raw_dataset(result.root)
    assert ds.spec.num_training == 3 and ds.spec.channel_names == {"0": "MRI"} and ds.spec.labels == LABELS
    assert (result.root / "imagesTr" / "p1_0000.nii.gz").read_bytes() == (images / "p1.nii.gz").read_bytes()
    assert verify(result.root, workers=1).ok
    assert (images / "p1.nii.gz").exists()  # never moved


def test_strict_refuses_and_writes_nothing(tmp_path: Path) -> None:
    images, labels = _source(tmp_path, ["p1"], extra_labels=("lonely",))
    ws = Workspace.at(tmp_path / "ws").ensure()
    with pytest.raises(DatasetError, match="--strict: 1 unpaired.*lonely.nii.gz: label without an image"):
        import_folders(images, labels, workspace=ws, dataset_id=1, name="S", channels=["MRI"], label_values=LABELS,
                       strict=True)
    assert list(ws.raw.iterdir()) == []


def test_multichannel_suffixes_and_incomplete_cases(tmp_path: Path) -> None:
    images, labels = _source(tmp_path, ["p1", "p2"], channels=2)
    (images / "p2_0001.nii.gz").unlink()
    ws = Workspace.at(tmp_path / "ws").ensure()
    result = import_folders(images, labels, workspace=ws, dataset_id=2, name="Multi", channels=["T1", "T2"],
                            label_values=LABELS)
    assert result.cases == ("p1",)
    reasons = {u.path.name: u.reason for u in result.unpaired}
    assert reasons["p2_0000.nii.gz"] == "channel files missing _0001"
    assert reasons["p2.nii.gz"] == "label without an image"
    assert [p.name for p in open_raw_dataset(result.root).cases["p1"].images] == ["p1_0000.nii.gz",
                                                                                    "p1_0001.nii.gz"]


def test_one_folder_per_channel(tmp_path: Path) -> None:
    a, labels = _source(tmp_path / "a", ["p1", "p2"])
    b, _ = _source(tmp_path / "b", ["p1", "p2"])
    ws = Workspace.at(tmp_path / "ws").ensure()
    result = import_folders([a, b], labels, workspace=ws, dataset_id=3, name="PerDir", channels=["T1", "T2"],
                            label_values=LABELS)
    ds = open_raw_dataset(result.root)
    assert (result.root / "imagesTr" / "p2_0001.nii.gz").read_bytes() == (b / "p2.nii.gz").read_bytes()
    assert verify(ds, workers=1).ok


def test_link_hard_links(tmp_path: Path) -> None:
    images, labels = _source(tmp_path, ["p1"])
    ws = Workspace.at(tmp_path / "ws").ensure()
    result = import_folders(images, labels, workspace=ws, dataset_id=4, name="L", channels=["MRI"],
                            label_values=LABELS, link=True)
    assert (result.root / "imagesTr" / "p1_0000.nii.gz").stat().st_ino == (images / "p1.nii.gz").stat().st_ino


def test_other_formats_are_converted(tmp_path: Path) -> None:
    images, labels = _source(tmp_path, ["p1"], ending=".mha")
    ws = Workspace.at(tmp_path / "ws").ensure()
    result = import_folders(images, labels, workspace=ws, dataset_id=5, name="Conv", channels=["MRI"],
                            label_values=LABELS, file_ending=".nii.gz")
    assert result.converted == 2
    img, geom = read_images([result.root / "imagesTr" / "p1_0000.nii.gz"])
    src, src_geom = read_images([images / "p1.mha"])
    np.testing.assert_array_equal(img, src)
    np.testing.assert_allclose(geom.origin, src_geom.origin)
    seg, _ = read_segmentation(result.root / "labelsTr" / "p1.nii.gz")
    np.testing.assert_array_equal(seg, read_segmentation(labels / "p1.mha")[0])


def test_existing_target_and_id_clash(tmp_path: Path) -> None:
    images, labels = _source(tmp_path, ["p1"])
    ws = Workspace.at(tmp_path / "ws").ensure()
    kw = {"workspace": ws, "channels": ["MRI"], "label_values": LABELS}
    import_folders(images, labels, dataset_id=6, name="Once", **kw)
    with pytest.raises(DatasetError, match="already exists; pass --clean"):
        import_folders(images, labels, dataset_id=6, name="Once", **kw)
    import_folders(images, labels, dataset_id=6, name="Once", clean=True, **kw)
    with pytest.raises(DatasetError, match="id 6 is already used by Dataset006_Once"):
        import_folders(images, labels, dataset_id=6, name="Other", **kw)
    with pytest.raises(UsageError, match="Dataset name"):
        import_folders(images, labels, dataset_id=7, name="bad name", **kw)


def test_cli_import_with_spec_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    images, labels = _source(tmp_path, ["p1", "p2"])
    spec = tmp_path / "spec.json"
    spec.write_text(json.dumps({"channel_names": {"0": "CT"}, "labels": LABELS, "description": "from a spec"}))
    rc = main(["import", "--workspace", str(tmp_path / "ws"), "--images", str(images), "--labels", str(labels),
               "--id", "8", "--name", "Spec", "--spec", str(spec), "--label", "background=0",
               "--label", "a=1", "--label", "whole=1,2"])
    assert rc == 2  # regions without regions_class_order
    assert "regions_class_order" in capsys.readouterr().err
    rc = main(["import", "--workspace", str(tmp_path / "ws"), "--images", str(images), "--labels", str(labels),
               "--id", "8", "--name", "Spec", "--spec", str(spec)])
    assert rc == 0
    assert "imported 2 cases" in capsys.readouterr().out
    data = json.loads((tmp_path / "ws" / "raw" / "Dataset008_Spec" / "dataset.json").read_text(encoding="utf-8"))
    assert data["channel_names"] == {"0": "CT"} and data["description"] == "from a spec"
    assert main(["verify", "--workspace", str(tmp_path / "ws"), "8", "-j", "1"]) == 0


def test_cli_bad_label_flag(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    images, labels = _source(tmp_path, ["p1"])
    rc = main(["import", "--workspace", str(tmp_path / "ws"), "--images", str(images), "--labels", str(labels),
               "--id", "9", "--name", "X", "--channel", "MRI", "--label", "background"])
    assert rc == 2 and "expected NAME=VALUE" in capsys.readouterr().err


# ---- MSD -----------------------------------------------------------------------------------------------------------
def _msd_task(tmp_path: Path) -> Path:
    task = tmp_path / "Task05_Prostate"
    for sub in ("imagesTr", "labelsTr", "imagesTs"):
        (task / sub).mkdir(parents=True)
    rng = np.random.default_rng(0)
    direction4 = np.eye(4)
    direction4[:3, :3] = [[0, -1, 0], [1, 0, 0], [0, 0, 1]]
    for name, folder in (("prostate_00", "imagesTr"), ("prostate_01", "imagesTr"), ("prostate_03", "imagesTs")):
        img = sitk.GetImageFromArray(rng.normal(size=(2, 3, 4, 5)).astype(np.float32), isVector=False)
        img.SetSpacing((0.6, 0.6, 3.6, 1.0))
        img.SetOrigin((1.0, 2.0, 3.0, 0.0))
        img.SetDirection(tuple(direction4.ravel()))
        sitk.WriteImage(img, str(task / folder / f"{name}.nii.gz"))
    for name in ("prostate_00", "prostate_01"):
        seg = sitk.GetImageFromArray(rng.integers(0, 3, (3, 4, 5)).astype(np.uint8))
        seg.SetSpacing((0.6, 0.6, 3.6))
        seg.SetOrigin((1.0, 2.0, 3.0))
        seg.SetDirection((0, -1, 0, 1, 0, 0, 0, 0, 1))
        sitk.WriteImage(seg, str(task / "labelsTr" / f"{name}.nii.gz"))
    (task / "imagesTr" / "._prostate_00.nii.gz").write_bytes(b"mac")
    (task / "dataset.json").write_text(json.dumps({
        "name": "PROSTATE", "tensorImageSize": "4D", "modality": {"0": "T2", "1": "ADC"},
        "labels": {"0": "background", "1": "PZ", "2": "TZ"}, "numTraining": 2, "numTest": 1,
        "training": [{"image": "./imagesTr/prostate_00.nii.gz", "label": "./labelsTr/prostate_00.nii.gz"}],
        "test": ["./imagesTs/prostate_03.nii.gz"]}))
    return task


def test_convert_msd_splits_4d_and_rewrites_dataset_json(tmp_path: Path) -> None:
    task = _msd_task(tmp_path)
    ws = Workspace.at(tmp_path / "ws").ensure()
    name = convert_msd(task, workspace=ws, workers=1)
    assert name == "Dataset005_Prostate"
    root = ws.raw_dataset(name)
    data = json.loads((root / "dataset.json").read_text(encoding="utf-8"))
    assert data["channel_names"] == {"0": "T2", "1": "ADC"}
    assert data["labels"] == {"background": 0, "PZ": 1, "TZ": 2}
    assert data["file_ending"] == ".nii.gz" and data["numTraining"] == 2
    assert not {"modality", "training", "test"} & set(data)
    assert sorted(p.name for p in (root / "imagesTs").iterdir()) == ["prostate_03_0000.nii.gz",
                                                                     "prostate_03_0001.nii.gz"]
    source = sitk.GetArrayFromImage(sitk.ReadImage(str(task / "imagesTr" / "prostate_01.nii.gz")))
    ch1, geom = read_images([root / "imagesTr" / "prostate_01_0001.nii.gz"])
    np.testing.assert_array_equal(ch1[0], source[1])
    np.testing.assert_allclose(geom.spacing, (3.6, 0.6, 0.6), rtol=1e-6)
    np.testing.assert_allclose(geom.origin, (1.0, 2.0, 3.0))
    np.testing.assert_allclose(geom.direction, (0, -1, 0, 1, 0, 0, 0, 0, 1), atol=1e-6)
    assert verify(root, workers=1).ok


def test_convert_msd_cli_and_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    task = _msd_task(tmp_path)
    ws = str(tmp_path / "ws")
    assert main(["convert-msd", str(task), "--id", "105", "--workspace", ws, "-j", "2"]) == 0
    assert "Dataset105_Prostate" in capsys.readouterr().out
    assert main(["convert-msd", str(task), "--id", "105", "--workspace", ws, "-j", "1"]) == 1
    assert "already exists" in capsys.readouterr().err
    bad = tmp_path / "NotATask"
    bad.mkdir()
    assert main(["convert-msd", str(bad), "--workspace", ws]) == 1
    assert "TaskNN_Name" in capsys.readouterr().err
