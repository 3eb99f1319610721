"""Model packages: export (nnU-Net layout + model card), safe extraction, install, predict -m ZIP."""

from __future__ import annotations

import json
import stat
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from autounet.cli import main
from autounet.errors import UsageError
from autounet.inference import Predictor
from autounet.inference.package import (
    MODEL_CARD,
    export_package,
    extract_package,
    install_package,
)
from autounet.io import ImageGeometry, read_segmentation, write_image

DS = "Dataset900_Tiny"
MODEL = "nnUNetTrainer__nnUNetPlans__3d_fullres"


@pytest.fixture
def trained(make_model, tmp_path: Path) -> Path:
    """A results/Dataset900_Tiny folder with a 2-fold model and fold validation summaries."""
    model_dir = make_model(folds=(0, 1))
    for fold, dice in ((0, 0.8), (1, 0.6)):
        val = model_dir / f"fold_{fold}" / "validation"
        val.mkdir(parents=True)
        (val / "summary.json").write_text(json.dumps({"foreground_mean": {"Dice": dice, "NSD": dice + 0.1}}),
                                          encoding="utf-8")
    return model_dir.parent


def _zip(path: Path, members: dict[str, bytes], *, symlink: str | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        if symlink:
            info = zipfile.ZipInfo(symlink)
            info.external_attr = (stat.S_IFLNK | 0o777) << 16
            zf.writestr(info, "/etc/passwd")
    return path


def test_export_writes_reference_layout_and_card(trained: Path, tmp_path: Path) -> None:
    card = export_package(trained, tmp_path / "m.zip")
    names = set(zipfile.ZipFile(tmp_path / "m.zip").namelist())
    base = f"{DS}/{MODEL}"
    assert {f"{base}/plans.json", f"{base}/dataset.json", f"{base}/fold_0/checkpoint_final.pth",
            f"{base}/fold_1/validation/summary.json", f"{DS}/{MODEL_CARD}"} <= names
    assert card.models[0].folds == ("0", "1") and card.models[0].spacing == (1.0, 1.0, 1.0)
    assert card.models[0].cross_validation == pytest.approx({"Dice": 0.7, "NSD": 0.8})
    assert set(card.files) == names - {f"{DS}/{MODEL_CARD}"}
    with zipfile.ZipFile(tmp_path / "m.zip") as zf:
        plans = json.loads(zf.read(f"{base}/plans.json"))
        ckpt = torch.load(__import__("io").BytesIO(zf.read(f"{base}/fold_0/checkpoint_final.pth")),
                          weights_only=True)
    assert "schema" not in plans  # the reference's plans schema
    assert set(ckpt) <= {"network_weights", "init_args", "trainer_name", "inference_allowed_mirroring_axes",
                         "current_epoch"}
    assert any(".all_modules." in k for k in ckpt["network_weights"])  # the reference's names


def test_install_and_predict_from_zip_equal_the_folder(trained: Path, tmp_path: Path, rng) -> None:
    export_package(trained, tmp_path / "m.zip")
    ws = tmp_path / "ws"
    assert main(["install-model", str(tmp_path / "m.zip"), "--workspace", str(ws)]) == 0
    installed = ws / "results" / DS / MODEL
    assert (installed / "fold_1" / "checkpoint_final.pth").is_file()
    with pytest.raises(UsageError, match="already exists"):
        install_package(tmp_path / "m.zip", ws / "results")
    img = rng.normal(size=(1, 20, 23, 18)).astype(np.float32)
    inputs = tmp_path / "in"
    inputs.mkdir()
    write_image(img, inputs / "c_0000.nii.gz", ImageGeometry(spacing=(1.0, 1.0, 1.0)))
    assert main(["predict", "-i", str(inputs), "-o", str(tmp_path / "a"), "-m", str(tmp_path / "m.zip"),
                 "--no-tta", "--device", "cpu"]) == 0
    expected = Predictor.from_model_dir(trained / MODEL, device="cpu", use_mirroring=False).predict(
        img, (1.0, 1.0, 1.0)).segmentation
    got, _ = read_segmentation(tmp_path / "a" / "c.nii.gz")
    np.testing.assert_array_equal(got.squeeze(0), expected)


def test_altered_package_is_refused(trained: Path, tmp_path: Path) -> None:
    export_package(trained, tmp_path / "m.zip")
    with zipfile.ZipFile(tmp_path / "m.zip") as zf:
        members = {n: zf.read(n) for n in zf.namelist()}
    members[f"{DS}/{MODEL}/dataset.json"] += b" "
    with pytest.raises(UsageError, match="SHA-256"):
        extract_package(_zip(tmp_path / "bad.zip", members), tmp_path / "x1")
    members.pop(f"{DS}/{MODEL}/dataset.json")
    members[f"{DS}/{MODEL}/dataset.json"] = b"{}"
    members[f"{DS}/{MODEL}/extra.py"] = b"print(1)"
    with pytest.raises(UsageError, match="not listed"):
        extract_package(_zip(tmp_path / "bad2.zip", members), tmp_path / "x2")


@pytest.mark.parametrize("name", ["../evil.txt", "/abs/evil.txt", f"{DS}/../../evil.txt", "C:/evil.txt",
                                  f"{DS}\\..\\evil.txt"])
def test_path_traversal_is_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(UsageError, match="refusing"):
        extract_package(_zip(tmp_path / "t.zip", {name: b"x"}), tmp_path / "out")
    assert not (tmp_path / "evil.txt").exists()


def test_symlink_and_size_limit_and_other_layouts_are_refused(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="symbolic link"):
        extract_package(_zip(tmp_path / "s.zip", {}, symlink=f"{DS}/link"), tmp_path / "o1")
    with pytest.raises(UsageError, match="size limit"):
        extract_package(_zip(tmp_path / "b.zip", {f"{DS}/big.bin": b"0" * 5000}), tmp_path / "o2", max_bytes=1000)
    with pytest.raises(UsageError, match="one DatasetXXX_Name"):
        extract_package(_zip(tmp_path / "l.zip", {"notes/readme.txt": b"x"}), tmp_path / "o3")
    (tmp_path / "n.zip").write_bytes(b"not a zip")
    with pytest.raises(UsageError, match="not a readable zip"):
        extract_package(tmp_path / "n.zip", tmp_path / "o4")


def test_reference_style_zip_without_card_installs(trained: Path, tmp_path: Path) -> None:
    """A package laid out as nnUNetv2_export_model_to_zip writes it (no model.json) installs, unverified."""
    members = {}
    for path in (trained / MODEL).rglob("*"):
        if path.is_file():
            members[f"{DS}/{path.relative_to(trained).as_posix()}"] = path.read_bytes()
    result = install_package(_zip(tmp_path / "ref.zip", members), tmp_path / "other")
    assert not result.verified and result.model_dirs == (tmp_path / "other" / DS / MODEL,)
    assert Predictor.from_model_dir(result.model_dirs[0], device="cpu").model.folds == ("0", "1")


def test_export_model_cli_onnx_needs_one_configuration(trained: Path, tmp_path: Path, capsys) -> None:
    ws = trained.parent.parent
    assert main(["export-model", "-d", DS, "-o", str(tmp_path / "m.onnx"), "--format", "onnx",
                 "--workspace", str(ws)]) == 2
    assert "-c CONFIG" in capsys.readouterr().err
    assert main(["export-model", "-d", DS, "-o", str(tmp_path / "m.zip"), "--workspace", str(ws)]) == 0
    assert "folds 0, 1" in capsys.readouterr().out
