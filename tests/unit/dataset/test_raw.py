"""Raw dataset discovery as the reference does it (folder naming and the explicit ``dataset`` listing)."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest

from autounet.dataset import group_channel_files, open_raw_dataset
from autounet.errors import DatasetError, SchemaError
from autounet.workspace import Workspace

MakeDataset = Callable[..., Path]


def test_folder_discovery(make_dataset: MakeDataset) -> None:
    root = make_dataset(n_cases=3, n_channels=2)
    ds = open_raw_dataset(root)
    assert ds.name == "Dataset001_Tiny" and ds.root == root.resolve()
    assert ds.case_ids == ["case_000", "case_001", "case_002"]
    files = ds.cases["case_001"]
    assert [p.name for p in files.images] == ["case_001_0000.nii.gz", "case_001_0001.nii.gz"]
    assert files.label is not None and files.label.name == "case_001.nii.gz"
    assert ds.reader_name() == "simpleitk" and not ds.explicit


def test_case_without_label_and_stray_files(make_dataset: MakeDataset) -> None:
    root = make_dataset()
    (root / "labelsTr" / "case_002.nii.gz").unlink()
    (root / "imagesTr" / "loose.nii.gz").write_bytes(b"")
    (root / "imagesTr" / "._case_000_0000.nii.gz").write_bytes(b"")  # macOS resource fork: ignored
    ds = open_raw_dataset(root)
    assert ds.cases["case_002"].label is None
    assert [p.name for p in ds.stray_files] == ["loose.nii.gz"]
    assert ds.case_ids == ["case_000", "case_001", "case_002"]


def test_channel_pattern_as_the_reference(tmp_path: Path) -> None:
    """Channel files end in ``_`` + exactly 4 digits; other files with the ending are stray."""
    for name in ("a_0000.png", "a_0001.png", "b_000.png", "c_00000.png", "d_0000.nii.gz"):
        (tmp_path / name).write_bytes(b"")
    cases, stray = group_channel_files(tmp_path, ".png")
    assert {c: [p.name for p in f] for c, f in cases.items()} == {"a": ["a_0000.png", "a_0001.png"]}
    assert [p.name for p in stray] == ["b_000.png", "c_00000.png"]


def test_explicit_listing_with_relative_paths_and_variables(tmp_path: Path) -> None:
    root = tmp_path / "Dataset007_Listed"
    root.mkdir()
    data = {"channel_names": {"0": "CT"}, "labels": {"background": 0, "x": 1}, "numTraining": 2,
            "file_ending": ".nrrd", "dataset": {
                "p2": {"images": ["imgs/p2.nrrd"], "label": "segs/p2.nrrd"},
                "p1": {"images": ["$DATA/p1.nrrd"], "label": "/abs/p1.nrrd"}}}
    (root / "dataset.json").write_text(json.dumps(data))
    with pytest.raises(DatasetError, match="outside"):  # files outside the dataset folder need the user's opt-in
        open_raw_dataset(root, environ={"DATA": "/data"})
    ds = open_raw_dataset(root, environ={"DATA": "/data"}, allow_external=True)
    assert ds.explicit and ds.case_ids == ["p1", "p2"]
    assert ds.cases["p2"].images == (root.resolve() / "imgs" / "p2.nrrd",)
    assert ds.cases["p1"].images == (Path("/data/p1.nrrd"),)
    assert ds.cases["p1"].label == Path("/abs/p1.nrrd")
    assert open_raw_dataset(root, allow_external=True).cases["p1"].images == (root.resolve() / "$DATA" / "p1.nrrd",)


def test_lookup_by_id_and_name_in_workspace(tmp_path: Path, make_dataset: MakeDataset) -> None:
    make_dataset()
    ws = Workspace.at(tmp_path)
    assert open_raw_dataset(1, ws).name == "Dataset001_Tiny"
    assert open_raw_dataset("1", ws).name == "Dataset001_Tiny"
    assert open_raw_dataset("Dataset001_Tiny", ws).root == ws.raw / "Dataset001_Tiny"
    with pytest.raises(DatasetError, match="No dataset with id 5"):
        open_raw_dataset(5, ws)
    with pytest.raises(DatasetError, match="not a folder"):
        open_raw_dataset("Dataset001_Tiny")


def test_missing_dataset_json(tmp_path: Path) -> None:
    (tmp_path / "Dataset003_X").mkdir()
    with pytest.raises(SchemaError, match="dataset.json not found"):
        open_raw_dataset(tmp_path / "Dataset003_X")


def test_reader_override(make_dataset: MakeDataset) -> None:
    root = make_dataset()
    data = json.loads((root / "dataset.json").read_text(encoding="utf-8"))
    data["overwrite_image_reader_writer"] = "NibabelIO"
    (root / "dataset.json").write_text(json.dumps(data))
    assert open_raw_dataset(root).reader_name() == "nibabel"
    data["overwrite_image_reader_writer"] = "NoSuchIO"
    (root / "dataset.json").write_text(json.dumps(data))
    assert open_raw_dataset(root).reader_name() == "simpleitk"
