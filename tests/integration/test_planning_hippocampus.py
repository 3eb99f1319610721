"""Hippocampus end to end through the CLI: our fingerprint vs the reference's, and our plans vs its plans.

Tolerances (stated in the README, *Exactness, tolerances and memory*): spacings, cropped shapes and the median relative size are exact;
intensity min, max, median and the 0.5/99.5 percentiles are exact (we draw the same samples and interpolate with
numpy's arithmetic; asserted to 1e-6 relative); mean and std within 1e-5 relative (the reference accumulates
1e8 float32 samples in float32; we accumulate in float64).
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from autounet.cli import main
from autounet.planning.reference import export_plans
from autounet.schemas.fingerprint import load_fingerprint
from autounet.schemas.plans import load_plans

GOLDEN = Path(__file__).resolve().parents[1] / "data" / "golden" / "planning"
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "unit" / "planning"))
from _planning_golden import diff  # noqa: E402

pytestmark = pytest.mark.integration
NAME = "Dataset004_Hippocampus"
PRESETS = {"default": "nnUNetPlans", "resenc-m": "nnUNetResEncUNetMPlans", "resenc-l": "nnUNetResEncUNetLPlans",
           "resenc-xl": "nnUNetResEncUNetXLPlans"}


@pytest.fixture(scope="module")
def workspace(shared_datasets: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The 208 image/label pairs in the reference's raw layout, fingerprinted and planned with every preset."""
    src = shared_datasets / "Hippocampus"
    root = tmp_path_factory.mktemp("hippo") / "ws"
    raw = root / "raw" / NAME
    (raw / "imagesTr").mkdir(parents=True)
    (raw / "labelsTr").mkdir()
    pairs = sorted(p.name for p in (src / "labels").glob("*.nii.gz") if (src / "images" / p.name).is_file())
    for f in pairs:
        shutil.copyfile(src / "images" / f, raw / "imagesTr" / f"{f[:-7]}_0000.nii.gz")
        shutil.copyfile(src / "labels" / f, raw / "labelsTr" / f)
    shutil.copyfile(GOLDEN / NAME / "dataset.json", raw / "dataset.json")
    assert main(["fingerprint", "--workspace", str(root), "4", "-j", "2", "--quiet"]) == 0
    for preset in PRESETS:
        assert main(["plan", "--workspace", str(root), "4", "--preset", preset, "--quiet"]) == 0
    return root


def test_fingerprint_matches_reference(workspace: Path) -> None:
    ours = load_fingerprint(workspace / "preprocessed" / NAME / "dataset_fingerprint.json")
    ref = json.loads((GOLDEN / NAME / "dataset_fingerprint.json").read_text(encoding="utf-8"))
    assert ours.num_cases == 208
    assert [list(s) for s in ours.spacings] == ref["spacings"]
    assert [list(s) for s in ours.shapes_after_crop] == ref["shapes_after_crop"]
    assert ours.median_relative_size_after_cropping == ref["median_relative_size_after_cropping"]
    mine = ours.foreground_intensity_properties_per_channel[0].to_dict()
    theirs = ref["foreground_intensity_properties_per_channel"]["0"]
    for key in ("min", "max", "median", "percentile_00_5", "percentile_99_5"):
        assert mine[key] == pytest.approx(theirs[key], rel=1e-6, abs=0), key
    for key in ("mean", "std"):
        assert mine[key] == pytest.approx(theirs[key], rel=1e-5), key
    assert ours.intensity_sampling["exact"] and ours.intensity_sampling["samples_per_case"] == 480769


@pytest.mark.parametrize("preset", list(PRESETS))
def test_plans_match_reference(workspace: Path, preset: str) -> None:
    name = PRESETS[preset]
    ours = export_plans(load_plans(workspace / "preprocessed" / NAME / f"{name}.json"))
    theirs = json.loads((GOLDEN / NAME / f"{name}.json").read_text(encoding="utf-8"))
    ours_int = ours.pop("foreground_intensity_properties_per_channel")["0"]
    theirs_int = theirs.pop("foreground_intensity_properties_per_channel")["0"]
    differences = diff(ours, theirs)
    assert not differences, "\n".join(differences)
    for key, value in theirs_int.items():
        assert ours_int[key] == pytest.approx(value, rel=1e-5), key
