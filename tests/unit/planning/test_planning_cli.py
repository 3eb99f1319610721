"""``autounet fingerprint``, ``autounet plan`` and ``autounet plans import|export`` in-process, and the store."""

from __future__ import annotations

import json
import os
import shutil

import pytest
from _planning_data import write_raw_dataset
from _planning_golden import GOLDEN, diff

from autounet.cli import main
from autounet.planning.store import read_plans_file, write_plans
from autounet.schemas.fingerprint import load_fingerprint
from autounet.schemas.plans import load_plans


@pytest.fixture(scope="module")
def _fingerprinted(tmp_path_factory):
    """A workspace whose tiny dataset was fingerprinted once (1e8 intensity draws cost ~2 s per extraction)."""
    root = tmp_path_factory.mktemp("cli") / "ws"
    write_raw_dataset(root / "raw")
    assert main(["fingerprint", "--workspace", str(root), "900", "-j", "1"]) == 0
    return root


@pytest.fixture
def workspace_root(_fingerprinted, tmp_path):
    """A private copy of the fingerprinted workspace (file times preserved, so the fingerprint is current)."""
    root = tmp_path / "ws"
    shutil.copytree(_fingerprinted, root)
    return root


def _cli(root, *args: str) -> int:
    return main([args[0], "--workspace", str(root), *args[1:]])


def test_fingerprint_then_plan(workspace_root, capsys) -> None:
    assert _cli(workspace_root, "fingerprint", "900", "-j", "1") == 0  # reused
    fp_file = workspace_root / "preprocessed" / "Dataset900_Tiny" / "dataset_fingerprint.json"
    fp = load_fingerprint(fp_file)
    assert fp.num_cases == 4 and fp.shapes_after_crop[0] == (10, 14, 12)  # zero border cropped
    assert fp.spacings[0] == (2.0, 1.0, 1.0) and fp.image_reader == "simpleitk"
    assert "channel 0 foreground" in capsys.readouterr().out

    assert _cli(workspace_root, "plan", "Dataset900_Tiny", "--explain") == 0
    out = capsys.readouterr().out
    assert "VRAM budget" in out and "Plans written to" in out and "3d_fullres" in out
    pre = workspace_root / "preprocessed" / "Dataset900_Tiny"
    plans = load_plans(pre / "nnUNetPlans.json")
    assert plans.provenance["upstream_sha256"] == fp.sha256()
    assert json.loads((pre / "dataset.json").read_text(encoding="utf-8"))["numTraining"] == 4
    assert plans.configuration("3d_fullres").spacing == (2.0, 1.0, 1.0)


def test_fingerprint_is_reused_unless_clean_or_changed(workspace_root) -> None:
    fp_file = workspace_root / "preprocessed" / "Dataset900_Tiny" / "dataset_fingerprint.json"
    first = fp_file.stat().st_mtime_ns
    assert _cli(workspace_root, "fingerprint", "900") == 0
    assert fp_file.stat().st_mtime_ns == first
    assert _cli(workspace_root, "fingerprint", "900", "--clean", "-j", "1") == 0
    assert fp_file.stat().st_mtime_ns != first
    second = fp_file.stat().st_mtime_ns
    label = workspace_root / "raw" / "Dataset900_Tiny" / "labelsTr" / "case00.nii.gz"
    os.utime(label, ns=(second + 10**9, second + 10**9))  # the dataset changed: the fingerprint is stale
    assert _cli(workspace_root, "fingerprint", "900", "-j", "1") == 0
    assert fp_file.stat().st_mtime_ns != second


def test_gpu_memory_without_plans_name_is_a_usage_error(workspace_root, capsys) -> None:
    assert _cli(workspace_root, "plan", "900", "--preset", "resenc-l", "--gpu-memory", "40") == 2
    assert "--plans " in capsys.readouterr().err
    assert _cli(workspace_root, "plan", "900", "--preset", "resenc-l", "--gpu-memory", "40",
                "--plans-name", "nnUNetResEncUNetLPlans_40G") == 0
    assert (workspace_root / "preprocessed" / "Dataset900_Tiny" / "nnUNetResEncUNetLPlans_40G.json").is_file()


def test_replanning_keeps_custom_configurations(workspace_root) -> None:
    assert _cli(workspace_root, "plan", "900") == 0
    path = workspace_root / "preprocessed" / "Dataset900_Tiny" / "nnUNetPlans.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    data["configurations"]["3d_fullres_bs16"] = {"inherits_from": "3d_fullres", "batch_size": 16}
    path.write_text(json.dumps(data))
    assert _cli(workspace_root, "plan", "900", "-c", "2d") == 0
    plans = load_plans(path)
    assert plans.configuration_names() == ["2d", "3d_fullres", "3d_fullres_bs16"]
    assert plans.configuration("3d_fullres_bs16").batch_size == 16


def test_plans_import_and_export(tmp_path, capsys) -> None:
    root = tmp_path / "ws"
    source = GOLDEN / "Dataset004_Hippocampus" / "nnUNetResEncUNetLPlans.json"
    assert _cli(root, "plans", "import", str(source)) == 0
    stored = root / "preprocessed" / "Dataset004_Hippocampus" / "nnUNetResEncUNetLPlans.json"
    assert load_plans(stored).planner == "resenc-l"
    assert _cli(root, "plans", "import", str(source)) == 2  # exists: needs --overwrite
    out = tmp_path / "exported.json"
    assert _cli(root, "plans", "export", "Dataset004_Hippocampus", "--plans", "nnUNetResEncUNetLPlans",
                "-o", str(out)) == 0
    assert not diff(json.loads(out.read_text(encoding="utf-8")), json.loads(source.read_text(encoding="utf-8")))


def test_store_reads_reference_files_and_merges(tmp_path) -> None:
    source = GOLDEN / "Dataset501_AnisoCT" / "nnUNetPlans.json"
    target = tmp_path / "nnUNetPlans.json"
    target.write_text(source.read_text(encoding="utf-8"))  # a reference file where we re-plan: its extra configs survive
    old = read_plans_file(target)
    fresh = type(old)(**{**old.__dict__, "configurations": {"2d": old.configurations["2d"]}})
    merged = write_plans(target, fresh)
    assert merged.configuration_names() == ["2d", "3d_lowres", "3d_fullres", "3d_cascade_fullres"]
    assert load_plans(target).configuration("3d_cascade_fullres").previous_stage == "3d_lowres"


def test_global_flags_may_follow_the_plans_action(tmp_path) -> None:
    source = GOLDEN / "Dataset506_ACDCLike" / "nnUNetPlans.json"
    root = tmp_path / "ws"
    assert main(["plans", "import", str(source), "--workspace", str(root), "--quiet"]) == 0
    assert (root / "preprocessed" / "Dataset506_ACDCLike" / "nnUNetPlans.json").is_file()
