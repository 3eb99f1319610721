"""One line for every failure: the paths of issue 13 and any OSError end in one line, exit 1, no traceback
(the traceback only with --debug); a command that cannot find its dataset creates nothing."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import numpy as np
import pytest
from _safety_testlib import DATASET, assert_one_line_error, tree

from autounet.cli import main
from autounet.errors import describe_os_error


def test_symlink_loop_in_images(tiny_workspace: Path, run_cli) -> None:
    images = tiny_workspace / "raw" / DATASET / "imagesTr"
    (images / "loop_0000.nii.gz").symlink_to("loop_0000.nii.gz")
    code, err = run_cli("verify", DATASET, "--workspace", tiny_workspace, "--workers", "1")
    out = run_cli.out
    assert code == 1 and "Traceback" not in err + out and "loop_0000.nii.gz" in out
    for command in ("plan", "fingerprint"):
        code, err = run_cli(command, DATASET, "--workspace", tiny_workspace, "--quiet")
        assert_one_line_error(code, err, expect=(1,), contains="loop_0000.nii.gz")


def _list_cases(root: Path, *, ghost: bool) -> None:
    spec = json.loads((root / "dataset.json").read_text(encoding="utf-8"))
    spec["dataset"] = {f"case_{i:03d}": {"images": [f"imagesTr/case_{i:03d}_0000.nii.gz"],
                                         "label": f"labelsTr/case_{i:03d}.nii.gz"} for i in range(3)}
    if ghost:
        spec["dataset"]["ghost"] = {"images": ["imagesTr/ghost_0000.nii.gz"], "label": "labelsTr/ghost.nii.gz"}
    (root / "dataset.json").write_text(json.dumps(spec), encoding="utf-8")


def test_listed_file_missing_at_plan_time(tiny_workspace: Path, run_cli) -> None:
    _list_cases(tiny_workspace / "raw" / DATASET, ghost=True)
    code, err = run_cli("plan", DATASET, "--workspace", tiny_workspace, "--quiet")
    line = assert_one_line_error(code, err, expect=(1,), contains="case ghost")
    assert "ghost_0000.nii.gz" in line


def test_file_deleted_after_planning_fails_preprocess_in_one_line(tiny_workspace: Path, run_cli) -> None:
    _list_cases(tiny_workspace / "raw" / DATASET, ghost=False)
    assert run_cli("plan", DATASET, "--workspace", tiny_workspace, "--quiet", "-c", "2d")[0] == 0
    (tiny_workspace / "raw" / DATASET / "imagesTr" / "case_001_0000.nii.gz").unlink()
    code, err = run_cli("preprocess", DATASET, "--workspace", tiny_workspace, "--quiet", "-c", "2d")
    assert_one_line_error(code, err, expect=(1,), contains="case_001")


def test_predict_output_is_a_file(tmp_path: Path, run_cli) -> None:
    from autounet.inference.testing import tiny_dataset, tiny_plans, write_random_model
    from autounet.io import ImageGeometry, write_image

    model = write_random_model(tmp_path / "results" / "Dataset900_Tiny", tiny_plans(), tiny_dataset(), "3d_fullres")
    write_image(np.zeros((8, 8, 8), np.float32), tmp_path / "in" / "a_0000.nii.gz", ImageGeometry(spacing=(1.0,) * 3))
    (tmp_path / "afile").write_text("keep", encoding="utf-8")
    code, err = run_cli("predict", "-m", model, "-f", "0", "-i", tmp_path / "in", "-o", tmp_path / "afile",
                        "--workspace", tmp_path / "ws", "--quiet")
    assert_one_line_error(code, err, expect=(2,), contains="is a file, not a folder")
    assert (tmp_path / "afile").read_text(encoding="utf-8") == "keep"


@pytest.mark.parametrize("missing", ["pred", "ref"])
def test_evaluate_missing_folder(tmp_path: Path, run_cli, missing: str) -> None:
    from autounet.io import ImageGeometry, write_segmentation

    for name in ("pred", "ref"):
        if name != missing:
            write_segmentation(np.zeros((4, 4, 4), np.uint8), tmp_path / name / "a.nii.gz",
                               ImageGeometry(spacing=(1.0,) * 3))
    code, err = run_cli("evaluate", tmp_path / "pred", tmp_path / "ref", "-l", "1", "--workspace", tmp_path / "ws")
    assert_one_line_error(code, err, expect=(1,), contains=f"{tmp_path / missing}")


@pytest.mark.parametrize("number", [errno.ENOSPC, errno.EACCES, errno.EROFS, errno.EIO])
def test_os_errors_during_writes(tiny_workspace: Path, run_cli, monkeypatch, number: int) -> None:
    """Disk full / permission denied / read-only / I/O error when an artefact is written: one line naming it."""
    original = os.replace

    def failing(src, dst, *args, **kwargs):
        if str(tiny_workspace) in os.fspath(dst):
            raise OSError(number, os.strerror(number), os.fspath(dst))
        return original(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "replace", failing)
    raw = tree(tiny_workspace / "raw")
    code, err = run_cli("plan", DATASET, "--workspace", tiny_workspace, "--quiet")
    line = assert_one_line_error(code, err, expect=(1,), contains=os.strerror(number))
    assert str(tiny_workspace / "preprocessed") in line
    assert tree(tiny_workspace / "raw") == raw
    assert not [p for p in (tiny_workspace / "preprocessed").rglob("*") if p.is_file()]  # no temporary left


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="No dataset with id 5"):
        main(["plan", "5", "--workspace", str(tmp_path / "ws"), "--debug"])


@pytest.mark.parametrize("command", [["plan", "5"], ["preprocess", "5"], ["train", "5", "3d_fullres", "0"],
                                     ["fingerprint", "5"], ["report", "5"]])
def test_missing_dataset_creates_nothing(tmp_path: Path, run_cli, command: list[str]) -> None:
    code, err = run_cli(*command, "--workspace", tmp_path / "new" / "ws", "--quiet")
    assert_one_line_error(code, err, expect=(1,), contains="No dataset with id 5")
    assert not (tmp_path / "new").exists()


def test_existing_workspace_keeps_its_folders(tmp_path: Path, run_cli) -> None:
    (tmp_path / "ws" / "raw").mkdir(parents=True)
    code, _ = run_cli("plan", "5", "--workspace", tmp_path / "ws", "--quiet")
    assert code == 1 and (tmp_path / "ws" / "raw").is_dir() and not (tmp_path / "ws" / "results").exists()


def test_describe_os_error() -> None:
    text = describe_os_error(OSError(errno.ENOSPC, "No space left on device", "/w/x.json"))
    assert text.startswith("'/w/x.json': No space left on device (free space") and "\n" not in text
    assert "link" in describe_os_error(OSError(errno.ELOOP, "Too many levels of symbolic links", "/a", "/b"))
    assert describe_os_error(OSError("odd")).endswith("run the command again).")
