"""File modes follow the umask: 0644 files / 0755 folders under umask 022, 0640 / 0750 under 027 (not mkstemp's
private 0600 / 0700), for every atomic writer."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch

from autounet._atomic import (
    atomic_path,
    current_umask,
    make_temp_dir,
    write_bytes_atomic,
    write_json_atomic,
)
from autounet.io import ImageGeometry, write_image
from autounet.training.checkpoint import save_checkpoint


@pytest.fixture(params=[0o022, 0o027], ids=["umask022", "umask027"])
def umask(request: pytest.FixtureRequest) -> Iterator[int]:
    old = os.umask(request.param)
    try:
        yield request.param
    finally:
        os.umask(old)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_current_umask_reads_without_changing(umask: int) -> None:
    assert current_umask() == umask
    assert current_umask() == umask


def test_atomic_writers(tmp_path: Path, umask: int) -> None:
    from autounet.preprocessing.store import DATA_COMPRESSION, _write_b2nd

    write_bytes_atomic(tmp_path / "a.bin", b"x")
    write_json_atomic(tmp_path / "sub" / "plans.json", {"a": 1})
    with atomic_path(tmp_path / "arr.npy") as tmp:
        np.save(tmp, np.zeros(3))
    with atomic_path(tmp_path / "arr.npz") as tmp:
        np.savez_compressed(tmp, a=np.zeros(3))
    save_checkpoint(tmp_path / "checkpoint_final.pth", {"network_weights": {"w": torch.zeros(2)}})
    _write_b2nd(tmp_path / "case.b2nd", np.zeros((1, 4, 4, 4), np.float32), (4, 4, 4), DATA_COMPRESSION)
    write_image(np.zeros((4, 4, 4), np.float32), tmp_path / "img" / "x_0000.nii.gz", ImageGeometry(spacing=(1.0,) * 3))
    files = ["a.bin", "sub/plans.json", "arr.npy", "arr.npz", "checkpoint_final.pth", "case.b2nd", "img/x_0000.nii.gz"]
    for name in files:
        assert _mode(tmp_path / name) == 0o666 & ~umask, name
    for folder in ("sub", "img"):
        assert _mode(tmp_path / folder) == 0o777 & ~umask, folder
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []  # no temporary left


def test_temporary_folders_that_become_outputs(tmp_path: Path, umask: int) -> None:
    folder = make_temp_dir(tmp_path, prefix=".x.")
    assert _mode(folder) == 0o777 & ~umask


def test_imported_dataset_folder(tmp_path: Path, umask: int) -> None:
    from autounet.dataset import import_folders
    from autounet.io import write_segmentation
    from autounet.workspace import Workspace

    geometry = ImageGeometry(spacing=(1.0,) * 3)
    write_image(np.zeros((4, 4, 4), np.float32), tmp_path / "src" / "images" / "a.nii.gz", geometry)
    write_segmentation(np.zeros((4, 4, 4), np.uint8), tmp_path / "src" / "labels" / "a.nii.gz", geometry)
    ws = Workspace.at(tmp_path / "ws").ensure()
    result = import_folders(tmp_path / "src" / "images", tmp_path / "src" / "labels", workspace=ws, dataset_id=7,
                            name="Modes", channels=("CT",), label_values={"background": 0})
    root = ws.raw_dataset(result.dataset_name)
    assert _mode(root) == 0o777 & ~umask
    assert _mode(root / "dataset.json") == 0o666 & ~umask
