"""Workspace resolution order, root creation and dataset lookup."""

from __future__ import annotations

from pathlib import Path

import pytest

from autounet.errors import DatasetError, UsageError, WorkspaceError
from autounet.workspace import Workspace, dataset_dir_name, model_dir_name, resolve_workspace


def test_explicit_argument_wins(tmp_path: Path) -> None:
    env = {"AUTOUNET_HOME": str(tmp_path / "home")}
    ws = resolve_workspace(tmp_path / "explicit", environ=env)
    assert ws.raw == (tmp_path / "explicit" / "raw").resolve()


def test_autounet_home_before_reference_variables(tmp_path: Path) -> None:
    env = {"AUTOUNET_HOME": str(tmp_path / "home"), "nnUNet_raw": "/a", "nnUNet_preprocessed": "/b",
           "nnUNet_results": "/c"}
    assert resolve_workspace(environ=env).results == (tmp_path / "home" / "results").resolve()


def test_reference_variables_used_when_all_set(tmp_path: Path) -> None:
    env = {"nnUNet_raw": str(tmp_path / "r"), "nnUNet_preprocessed": str(tmp_path / "p"),
           "nnUNet_results": str(tmp_path / "s")}
    ws = resolve_workspace(environ=env)
    assert (ws.raw, ws.preprocessed, ws.results) == (tmp_path / "r", tmp_path / "p", tmp_path / "s")


def test_default_is_cwd_folder(tmp_path: Path) -> None:
    ws = resolve_workspace(environ={"nnUNet_raw": "/only/one"}, cwd=tmp_path)
    assert ws.raw == tmp_path / "autounet_workspace" / "raw"


def test_ensure_creates_roots_and_rejects_file(tmp_path: Path) -> None:
    ws = Workspace.at(tmp_path / "ws").ensure()
    assert ws.raw.is_dir() and ws.preprocessed.is_dir() and ws.results.is_dir()
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "raw").write_text("not a folder")
    with pytest.raises(WorkspaceError, match="is a file"):
        Workspace.at(bad).ensure()


def test_find_dataset_by_id_name_and_path(tmp_workspace: Workspace) -> None:
    (tmp_workspace.raw / "Dataset004_Hippocampus").mkdir()
    assert tmp_workspace.find_dataset(4) == "Dataset004_Hippocampus"
    assert tmp_workspace.find_dataset("4") == "Dataset004_Hippocampus"
    assert tmp_workspace.find_dataset("Dataset004_Hippocampus") == "Dataset004_Hippocampus"
    assert tmp_workspace.find_dataset(tmp_workspace.raw / "Dataset004_Hippocampus") == "Dataset004_Hippocampus"
    with pytest.raises(DatasetError, match="No dataset with id 5"):
        tmp_workspace.find_dataset(5)
    (tmp_workspace.preprocessed / "Dataset004_Other").mkdir()
    with pytest.raises(DatasetError, match="ambiguous"):
        tmp_workspace.find_dataset(4)
    with pytest.raises(UsageError):
        tmp_workspace.find_dataset("hippo")


def test_names() -> None:
    assert dataset_dir_name(4, "Hippocampus") == "Dataset004_Hippocampus"
    assert model_dir_name("nnUNetTrainer", "nnUNetPlans", "3d_fullres") == "nnUNetTrainer__nnUNetPlans__3d_fullres"
    with pytest.raises(UsageError):
        dataset_dir_name(1000, "x")
