"""``verify``: every check on a tiny synthetic dataset broken on purpose; each message names case and problem."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from autounet.dataset import Problem, verify
from autounet.io import ImageGeometry, read_images, read_segmentation, write_image, write_segmentation

MakeDataset = Callable[..., Path]


def _only(problems: tuple[Problem, ...], check: str) -> list[Problem]:
    found = [p for p in problems if p.check == check]
    assert found, f"no {check!r} problem in {[str(p) for p in problems]}"
    return found


def _label(root: Path, case: str) -> Path:
    return root / "labelsTr" / f"{case}.nii.gz"


def _image(root: Path, case: str, channel: int = 0) -> Path:
    return root / "imagesTr" / f"{case}_{channel:04d}.nii.gz"


def _edit_json(root: Path, **changes: object) -> None:
    data = json.loads((root / "dataset.json").read_text(encoding="utf-8"))
    data.update(changes)
    (root / "dataset.json").write_text(json.dumps(data))


def test_clean_dataset_passes(make_dataset: MakeDataset) -> None:
    report = verify(make_dataset(), workers=1)
    assert report.ok, report.format()
    assert report.n_cases == 3 and report.reader == "simpleitk"
    assert "OK, 3 cases" in report.format()


def test_truncated_nii_gz(make_dataset: MakeDataset) -> None:
    root = make_dataset()
    path = _image(root, "case_001")
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    report = verify(root, workers=1)
    (p,) = _only(report.problems, "unreadable")
    assert p.case == "case_001" and p.file == str(path)
    assert "case case_001" in str(p) and "case_001_0000.nii.gz" in str(p)


def test_mask_0_255_is_named(make_dataset: MakeDataset) -> None:
    root = make_dataset()
    seg, geom = read_segmentation(_label(root, "case_002"))
    write_segmentation(np.where(seg > 0, 255, 0), _label(root, "case_002"), geom)
    (p,) = _only(verify(root, workers=1).problems, "mask_0_255")
    assert p.case == "case_002" and "0/255 mask" in p.message and "store the foreground as 1" in p.message


def test_undeclared_label_values(make_dataset: MakeDataset) -> None:
    root = make_dataset()
    seg, geom = read_segmentation(_label(root, "case_000"))
    seg[0, 0, 0, 0] = 7
    write_segmentation(seg, _label(root, "case_000"), geom)
    (p,) = _only(verify(root, workers=1).problems, "undeclared_labels")
    assert p.case == "case_000" and "[7]" in p.message and "declared: [0, 1, 2]" in p.message


def test_non_integer_labels(make_dataset: MakeDataset) -> None:
    root = make_dataset()
    seg, geom = read_segmentation(_label(root, "case_000"))
    values = seg.astype(np.float32)
    values[0, 0, 0, :3] = 0.5
    write_image(values, _label(root, "case_000"), geom)
    (p,) = _only(verify(root, workers=1).problems, "non_integer_labels")
    assert p.case == "case_000" and "3 voxel(s)" in p.message and "0.5" in p.message


def test_spacing_mismatch_reports_measured_difference(make_dataset: MakeDataset) -> None:
    root = make_dataset()
    seg, geom = read_segmentation(_label(root, "case_001"))
    write_segmentation(seg, _label(root, "case_001"), geom.replace(spacing=(2.5, 1.0, 1.0)))
    (p,) = _only(verify(root, workers=1).problems, "spacing_mismatch")
    assert p.case == "case_001" and p.file == str(_label(root, "case_001"))
    assert "(2.5, 1, 1) != (2, 1, 1)" in p.message and "difference (0.5, 0, 0)" in p.message


def test_small_spacing_difference_within_tolerance(make_dataset: MakeDataset) -> None:
    root = make_dataset()
    seg, geom = read_segmentation(_label(root, "case_001"))
    write_segmentation(seg, _label(root, "case_001"), geom.replace(spacing=(2.0001, 1.0, 1.0)))
    assert verify(root, workers=1).ok


def test_origin_and_direction_mismatch(make_dataset: MakeDataset) -> None:
    root = make_dataset()
    seg, geom = read_segmentation(_label(root, "case_000"))
    write_segmentation(seg, _label(root, "case_000"), geom.replace(origin=(0.0, 0.0, 1.5)))
    rot = (0.0, -1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0)
    seg2, geom2 = read_segmentation(_label(root, "case_002"))
    write_segmentation(seg2, _label(root, "case_002"), geom2.replace(direction=rot))
    report = verify(root, workers=1)
    (o,) = _only(report.problems, "origin_mismatch")
    assert o.case == "case_000" and "difference (0, 0, 1.5) mm" in o.message
    (d,) = _only(report.problems, "direction_mismatch")
    assert d.case == "case_002" and "largest difference 1" in d.message


def test_shape_mismatch(make_dataset: MakeDataset) -> None:
    root = make_dataset()
    seg, geom = read_segmentation(_label(root, "case_000"))
    write_segmentation(seg[:, :, :-1], _label(root, "case_000"), geom)
    (p,) = _only(verify(root, workers=1).problems, "shape_mismatch")
    assert p.case == "case_000" and "(6, 15, 16) != (6, 16, 16)" in p.message


def test_missing_second_channel(make_dataset: MakeDataset) -> None:
    root = make_dataset(n_channels=2)
    _image(root, "case_001", 1).unlink()
    (p,) = _only(verify(root, workers=1).problems, "missing_channel")
    assert p.case == "case_001" and p.file == str(_image(root, "case_001", 1))
    assert "channel file 0001 is missing" in p.message and "declares 2 channel(s)" in p.message


def test_extra_channel_file(make_dataset: MakeDataset) -> None:
    root = make_dataset()
    img, geom = read_images([_image(root, "case_000")])
    write_image(img, _image(root, "case_000", 1), geom)
    (p,) = _only(verify(root, workers=1).problems, "extra_channel")
    assert p.case == "case_000" and "0001 is not declared" in p.message


def test_channel_mismatch_between_channels(make_dataset: MakeDataset) -> None:
    root = make_dataset(n_channels=2)
    img, geom = read_images([_image(root, "case_002", 1)])
    write_image(img, _image(root, "case_002", 1), geom.replace(spacing=(3.0, 1.0, 1.0)))
    (p,) = _only(verify(root, workers=1).problems, "spacing_mismatch")
    assert p.case == "case_002" and "channel file case_002_0001.nii.gz vs case_002_0000.nii.gz" in p.message


def test_missing_label_and_label_without_image(make_dataset: MakeDataset) -> None:
    root = make_dataset()
    _label(root, "case_001").rename(root / "labelsTr" / "orphan.nii.gz")
    report = verify(root, workers=1)
    (m,) = _only(report.problems, "missing_label")
    assert m.case == "case_001" and m.file and m.file.endswith("labelsTr/case_001.nii.gz")
    (o,) = _only(report.problems, "label_without_images")
    assert o.case == "orphan"


def test_num_training_mismatch(make_dataset: MakeDataset) -> None:
    root = make_dataset()
    _edit_json(root, numTraining=5)
    (p,) = _only(verify(root, workers=1).problems, "num_training")
    assert "numTraining is 5 but 3 cases" in p.message


def test_nan_and_inf_intensities(make_dataset: MakeDataset) -> None:
    root = make_dataset()
    img, geom = read_images([_image(root, "case_000")])
    img[0, 0, 0, :2] = np.nan
    img[0, 1, 1, 1] = np.inf
    write_image(img, _image(root, "case_000"), geom)
    (p,) = _only(verify(root, workers=1).problems, "nan_inf")
    assert p.case == "case_000" and "2 NaN and 1 infinite" in p.message


def test_empty_image(make_dataset: MakeDataset) -> None:
    root = make_dataset()
    img, geom = read_images([_image(root, "case_002")])
    write_image(np.zeros_like(img), _image(root, "case_002"), geom)
    (p,) = _only(verify(root, workers=1).problems, "empty_image")
    assert p.case == "case_002" and "constant" in p.message


def test_ignore_label_not_highest(make_dataset: MakeDataset) -> None:
    root = make_dataset()
    _edit_json(root, labels={"background": 0, "ellipsoid": 1, "ignore": 2, "tube": 3})
    (p,) = _only(verify(root, workers=1).problems, "ignore_label")
    assert "highest" in p.message


def test_non_consecutive_labels(make_dataset: MakeDataset) -> None:
    root = make_dataset()
    _edit_json(root, labels={"background": 0, "ellipsoid": 1, "tube": 3})
    report = verify(root, workers=1)
    assert any(p.check == "labels" and "consecutive" in p.message for p in report.problems)


def test_duplicate_case_ids_in_explicit_listing(make_dataset: MakeDataset) -> None:
    root = make_dataset()
    entry = '{"images": ["imagesTr/case_000_0000.nii.gz"], "label": "labelsTr/case_000.nii.gz"}'
    text = (root / "dataset.json").read_text(encoding="utf-8").rstrip().rstrip("}")
    other = '{"images": ["imagesTr/case_001_0000.nii.gz"], "label": "labelsTr/case_001.nii.gz"}'
    # raw text: a JSON parser keeps only the last "a"; "b" then shares the files of that "a"
    (root / "dataset.json").write_text(text + f', "dataset": {{"a": {entry}, "a": {other}, "b": {other}}}}}')
    report = verify(root, workers=1)
    dups = _only(report.problems, "duplicate_case")
    assert any(p.case == "a" and "appears 2 times" in p.message for p in dups)
    assert any("used by cases a, b" in p.message for p in dups)


def test_case_ids_differing_only_in_letter_case(make_dataset: MakeDataset) -> None:
    root = make_dataset()
    for f in ("imagesTr/case_000_0000.nii.gz", "labelsTr/case_000.nii.gz"):
        src = root / f
        (src.parent / src.name.replace("case_000", "CASE_000")).write_bytes(src.read_bytes())
    _edit_json(root, numTraining=4)
    (p,) = _only(verify(root, workers=1).problems, "duplicate_case")
    assert "CASE_000, case_000" in p.message


def test_stray_and_wrong_ending_files(make_dataset: MakeDataset) -> None:
    root = make_dataset()
    (root / "imagesTr" / "notes.nii.gz").write_bytes(_image(root, "case_000").read_bytes())
    (root / "imagesTr" / "case_000_0000.nrrd").write_bytes(b"x")
    (root / "imagesTr" / ".DS_Store").write_bytes(b"x")
    problems = _only(verify(root, workers=1).problems, "extra_file")
    assert sorted(Path(p.file or "").name for p in problems) == ["case_000_0000.nrrd", "notes.nii.gz"]


def test_broken_dataset_json_is_reported_not_raised(make_dataset: MakeDataset) -> None:
    root = make_dataset()
    (root / "dataset.json").write_text('{"channel_names": {"0": "CT"}}')
    report = verify(root, workers=1)
    (p,) = _only(report.problems, "dataset_json")
    assert "missing key" in p.message and not report.ok


def test_all_problems_reported_at_once_in_parallel_and_nothing_modified(make_dataset: MakeDataset, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    import importlib

    verify_module = importlib.import_module("autounet.dataset.verification")
    monkeypatch.setattr(verify_module, "_CASES_PER_WORKER", 1)  # use worker processes even for 4 cases
    root = make_dataset(n_cases=4, n_channels=2)
    _image(root, "case_000", 1).unlink()
    seg, geom = read_segmentation(_label(root, "case_001"))
    write_segmentation(np.where(seg > 0, 255, 0), _label(root, "case_001"), geom)
    _label(root, "case_002").write_bytes(_label(root, "case_002").read_bytes()[:40])
    _edit_json(root, numTraining=9)
    before = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()}
    report = verify(root, workers=2)
    after = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in root.rglob("*") if p.is_file()}
    assert before == after
    assert {(p.check, p.case) for p in report.problems} >= {
        ("missing_channel", "case_000"), ("mask_0_255", "case_001"), ("unreadable", "case_002"),
        ("num_training", None)}
    report.save(tmp_path / "report.json")
    data = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert data["ok"] is False and data["n_problems"] == len(report.problems)
    assert {"check", "case", "file", "message"} <= set(data["problems"][0])


def test_unknown_reader_override_is_a_warning(make_dataset: MakeDataset) -> None:
    root = make_dataset()
    _edit_json(root, overwrite_image_reader_writer="MyCustomIO")
    report = verify(root, workers=1)
    assert report.ok and any(w.check == "reader" and "MyCustomIO" in w.message for w in report.warnings)


def test_explicit_dataset_listing_verifies(make_dataset: MakeDataset) -> None:
    root = make_dataset()
    listing = {c: {"images": [f"imagesTr/{c}_0000.nii.gz"], "label": f"labelsTr/{c}.nii.gz"}
               for c in ("case_000", "case_001", "case_002")}
    _edit_json(root, dataset=listing)
    assert verify(root, workers=1).ok
    listing["case_001"]["label"] = "labelsTr/gone.nii.gz"
    listing["case_002"]["images"] = ["imagesTr/nothere_0000.nii.gz"]
    _edit_json(root, dataset=listing)
    report = verify(root, workers=1)
    (p,) = _only(report.problems, "missing_label")
    assert p.case == "case_001" and p.file and p.file.endswith("gone.nii.gz")
    (m,) = _only(report.problems, "missing_image")
    assert m.case == "case_002" and m.file and m.file.endswith("nothere_0000.nii.gz")


def test_geometry_tolerance_is_configurable(make_dataset: MakeDataset) -> None:
    from autounet.dataset import Tolerances

    root = make_dataset()
    seg, geom = read_segmentation(_label(root, "case_001"))
    write_segmentation(seg, _label(root, "case_001"), geom.replace(origin=(0.0, 0.0, 0.01)))
    assert not verify(root, workers=1).ok
    assert verify(root, workers=1, tolerances=Tolerances(origin_atol_mm=0.1)).ok


def test_png_dataset_with_0_255_masks(tmp_path: Path) -> None:
    """The 2D path: natural-image datasets and the 0/255 mask mistake."""
    from PIL import Image

    root = tmp_path / "Dataset002_Png"
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    for i in range(2):
        Image.fromarray(np.full((8, 8), 10 * (i + 1), np.uint8) + np.eye(8, dtype=np.uint8)).save(
            root / "imagesTr" / f"c{i}_0000.png")
        Image.fromarray((np.eye(8) * (255 if i else 1)).astype(np.uint8)).save(root / "labelsTr" / f"c{i}.png")
    (root / "dataset.json").write_text(json.dumps({"channel_names": {"0": "grey"}, "labels": {
        "background": 0, "line": 1}, "numTraining": 2, "file_ending": ".png"}))
    report = verify(root, workers=1)
    assert report.reader == "natural2d"
    assert [(p.check, p.case) for p in report.problems] == [("mask_0_255", "c1")]


def test_geometry_helper_types() -> None:
    assert isinstance(ImageGeometry(spacing=(1, 1, 1)).spacing[0], float)
