"""Containment: names and listed paths from untrusted files or options never make a command write outside its
workspace or output folder (one test per vector of issue 13, and the others found)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from _safety_testlib import DATASET, assert_one_line_error, tree

from autounet.errors import DatasetError, SchemaError, UsageError
from autounet.names import check_file_ending, check_inside, check_name, name_problem
from autounet.schemas.dataset import DatasetSpec
from autounet.schemas.plans import Plans
from autounet.workspace import (
    Workspace,
    data_identifier,
    model_dir_name,
    plans_file_name,
)


def _listing(ws: Path, key: str, *, image: str | None = None) -> Path:
    """Rewrite the dataset's dataset.json with an explicit listing whose first case is keyed ``key``."""
    root = ws / "raw" / DATASET
    spec = json.loads((root / "dataset.json").read_text(encoding="utf-8"))
    listing = {f"case_{i:03d}": {"images": [f"imagesTr/case_{i:03d}_0000.nii.gz"],
                                 "label": f"labelsTr/case_{i:03d}.nii.gz"} for i in (1, 2)}
    listing[key] = {"images": [image or "imagesTr/case_000_0000.nii.gz"], "label": "labelsTr/case_000.nii.gz"}
    spec["dataset"] = listing
    (root / "dataset.json").write_text(json.dumps(spec), encoding="utf-8")
    return root


@pytest.mark.parametrize("value", ["", ".", "..", "a/b", "../../x", "/tmp/x", "a\\b", "x\ny", "C:x", "a" * 201])
def test_unsafe_names_are_refused(value: str) -> None:
    assert name_problem(value) is not None
    with pytest.raises(UsageError, match="plain name"):
        check_name(value, what="case id")


@pytest.mark.parametrize("value", ["case_001", "BraTS-GLI-00001-000", "3d_fullres", "nnUNetTrainer_250epochs",
                                   "a..b", "..hidden"])
def test_ordinary_names_pass(value: str) -> None:
    assert check_name(value, what="name") == value


def test_file_endings() -> None:
    assert check_file_ending(".nii.gz") == ".nii.gz"
    for bad in ("nii.gz", ".", "/../../x.nii.gz", "./x"):
        with pytest.raises(UsageError):
            check_file_ending(bad)


def test_check_inside_follows_links(tmp_path: Path) -> None:
    (tmp_path / "root").mkdir()
    (tmp_path / "root" / "link").symlink_to(tmp_path)
    assert check_inside(tmp_path / "root" / "a" / ".." / "b", tmp_path / "root", what="x")
    for escaping in (tmp_path / "root" / ".." / "x", tmp_path / "root" / "link" / "x", Path("/tmp/x")):
        with pytest.raises(UsageError, match="outside"):
            check_inside(escaping, tmp_path / "root", what="file")


@pytest.mark.parametrize("builder", [lambda v: plans_file_name(v), lambda v: data_identifier("nnUNetPlans", v),
                                     lambda v: model_dir_name(v, "nnUNetPlans", "3d_fullres"),
                                     lambda v: Workspace.at("/w").raw_dataset(v),
                                     lambda v: Workspace.at("/w").preprocessed_data("Dataset001_X", v)],
                         ids=["plans", "configuration", "trainer", "dataset", "data_identifier"])
def test_workspace_paths_refuse_escaping_names(builder) -> None:
    with pytest.raises(UsageError):
        builder("../../x")


@pytest.mark.parametrize("key", ["../../../../escaped", "/tmp/escaped", "a/b"])
def test_dataset_listing_keys(tiny_workspace: Path, run_cli, key: str) -> None:
    """`../../x` and `/tmp/x` keys in `dataset`: refused by verify, plan and preprocess; nothing written."""
    assert run_cli("plan", DATASET, "--workspace", tiny_workspace, "--quiet", "-c", "2d")[0] == 0
    root = _listing(tiny_workspace, key)
    outside = tree(tiny_workspace.parents[2], exclude=tiny_workspace)
    raw = tree(root)
    code, err = run_cli("verify", DATASET, "--workspace", tiny_workspace, "--workers", "1")
    assert code == 1 and "Traceback" not in err
    for command in (["plan", DATASET], ["preprocess", DATASET]):
        code, err = run_cli(*command, "--workspace", tiny_workspace, "--quiet")
        assert_one_line_error(code, err, contains="case id")
    assert tree(tiny_workspace.parents[2], exclude=tiny_workspace) == outside
    assert tree(root) == raw
    assert not Path("/tmp/escaped").exists()
    assert not [p for p in tiny_workspace.glob("preprocessed/*/*") if p.is_dir()]  # no case was written


def test_listing_files_outside_the_dataset_need_the_opt_in(tiny_workspace: Path, run_cli) -> None:
    root = tiny_workspace / "raw" / DATASET
    elsewhere = tiny_workspace.parent / "elsewhere"
    elsewhere.mkdir()
    (elsewhere / "case_000_0000.nii.gz").write_bytes((root / "imagesTr" / "case_000_0000.nii.gz").read_bytes())
    _listing(tiny_workspace, "case_000", image="../../../elsewhere/case_000_0000.nii.gz")
    code, err = run_cli("verify", DATASET, "--workspace", tiny_workspace, "--workers", "1")
    assert code == 1 and "Traceback" not in err and "outside" in run_cli.out
    code, err = run_cli("plan", DATASET, "--workspace", tiny_workspace, "--quiet")
    assert_one_line_error(code, err, expect=(1,), contains="outside")
    code, err = run_cli("verify", DATASET, "--workspace", tiny_workspace, "--workers", "1", "--allow-external-data")
    assert code == 0, err + run_cli.out


def test_absolute_listing_path_is_refused(tiny_workspace: Path) -> None:
    from autounet.dataset import open_raw_dataset

    _listing(tiny_workspace, "case_000", image="/etc/hostname")
    with pytest.raises(DatasetError, match="outside"):
        open_raw_dataset(DATASET, Workspace.at(tiny_workspace))
    ds = open_raw_dataset(DATASET, Workspace.at(tiny_workspace, allow_external_data=True))
    assert ds.cases["case_000"].images == (Path("/etc/hostname"),)


def test_case_id_from_a_file_name_with_a_control_character(tiny_workspace: Path, run_cli) -> None:
    images = tiny_workspace / "raw" / DATASET / "imagesTr"
    (images / "bad\x01name_0000.nii.gz").write_bytes((images / "case_000_0000.nii.gz").read_bytes())
    code, err = run_cli("plan", DATASET, "--workspace", tiny_workspace, "--quiet")
    assert_one_line_error(code, err, expect=(1,), contains="control character")


@pytest.mark.parametrize("option", [["train", DATASET, "3d_fullres", "0", "--trainer-name", "../../x"],
                                    ["train", DATASET, "../../x", "0"],
                                    ["train", DATASET, "3d_fullres", "0", "--plans", "/tmp/x"],
                                    ["preprocess", DATASET, "--plans", "../x"],
                                    ["preprocess", DATASET, "-c", "3d_fullres", "../../x"],
                                    ["plan", DATASET, "--plans-name", "../../x"],
                                    ["predict", "-d", DATASET, "-c", "3d_fullres", "--trainer", "../x",
                                     "-i", "in", "-o", "out"],
                                    ["predict", "-m", "model", "-i", "in", "-o", "out",
                                     "--output-format", "/../../x.nii.gz"],
                                    ["plans", "export", DATASET, "--plans", "../../x", "-o", "x.json"]],
                         ids=["trainer-name", "configuration", "plans-abs", "preprocess-plans", "preprocess-config",
                              "plans-name", "predict-trainer", "output-format", "plans-export"])
def test_name_options_are_refused(tiny_workspace: Path, run_cli, option: list[str]) -> None:
    before = tree(tiny_workspace.parents[2])
    code, err = run_cli(*option, "--workspace", tiny_workspace)
    assert_one_line_error(code, err, expect=(2,), contains="plain name")
    assert tree(tiny_workspace.parents[2]) == before


def test_output_format_in_the_library(tmp_path: Path) -> None:
    from autounet.inference import Predictor
    from autounet.inference.testing import tiny_dataset, tiny_plans, write_random_model
    from autounet.io import ImageGeometry, write_image

    model = write_random_model(tmp_path / "results" / "Dataset900_Tiny", tiny_plans(), tiny_dataset(), "3d_fullres")
    predictor = Predictor.from_model_dir(model, folds=(0,), device="cpu")
    write_image(np.zeros((8, 8, 8), np.float32), tmp_path / "in" / "a_0000.nii.gz", ImageGeometry(spacing=(1.0,) * 3))
    with pytest.raises(UsageError, match="output format"):
        predictor.predict_folder(tmp_path / "in", tmp_path / "out", output_format="/../../x.nii.gz")
    assert not (tmp_path / "x.nii.gz").exists() and not (tmp_path / "out").exists()


def test_plans_names_that_would_escape(tmp_path: Path) -> None:
    from autounet.inference.testing import tiny_plans

    good = tiny_plans().to_dict()
    for path, value in ((("plans_name",), "../x"), (("configurations", "3d_fullres", "data_identifier"), "../../x")):
        bad = json.loads(json.dumps(good))
        target = bad
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value
        with pytest.raises(SchemaError, match="plain name"):
            Plans.from_dict(bad).configuration("3d_fullres")
    spec = {"channel_names": {"0": "CT"}, "labels": {"background": 0, "a": 1}, "numTraining": 1,
            "file_ending": ".nii.gz", "dataset": {"../x": {"images": ["a.nii.gz"]}}}
    with pytest.raises(SchemaError, match="case id"):
        DatasetSpec.from_dict(spec)
    with pytest.raises(SchemaError):
        DatasetSpec.from_dict({**spec, "dataset": None, "file_ending": "./../x"})
