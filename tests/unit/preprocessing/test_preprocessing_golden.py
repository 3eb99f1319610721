"""Our preprocessing against arrays made by the reference (nnunetv2 2.8.1); see tests/data/golden/preprocessing."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from autounet.io import read_images, read_segmentation
from autounet.labels import LabelSpec
from autounet.planning.reference import import_plans
from autounet.preprocessing import preprocess_case, resample_data_or_seg_to_shape
from autounet.preprocessing.resample import compute_new_shape

GOLDEN = Path(__file__).resolve().parents[2] / "data" / "golden" / "preprocessing"
#: float32 work vs the reference's float64: differences are rounding only
DATA_MAX_ABS = 1e-4
DATA_MEAN_ABS = 1e-6

CASES = [(ds, cfg, npz.stem) for ds in ("Dataset004_Hippocampus", "Dataset005_SynthCT")
         for cfg in ("3d_fullres", "2d") for npz in sorted((GOLDEN / ds / cfg).glob("*.npz"))]


def _load(ds: str):
    folder = GOLDEN / ds
    plans = import_plans(json.loads((folder / "nnUNetPlans.json").read_text(encoding="utf-8")))
    spec = json.loads((folder / "dataset.json").read_text(encoding="utf-8"))
    labels = LabelSpec.from_labels(spec["labels"])
    return folder, plans, labels


def _key(name: str):
    parts = name[len("loc_"):].split("-")
    return int(parts[0]) if len(parts) == 1 else tuple(int(p) for p in parts)


@pytest.mark.parametrize(("ds", "cfg", "case"), CASES, ids=[f"{d[10:]}-{c}-{k}" for d, c, k in CASES])
def test_matches_reference(ds: str, cfg: str, case: str) -> None:
    folder, plans, labels = _load(ds)
    images, geometry = read_images([folder / "raw" / f"{case}_0000.nii.gz"])
    seg, _ = read_segmentation(folder / "raw" / f"{case}_seg.nii.gz")
    ours = preprocess_case(images, seg, geometry, plans, cfg, labels=labels, case_id=case)
    ref = np.load(folder / cfg / f"{case}.npz")
    props = ours.properties
    assert [list(b) for b in props.bbox_used_for_cropping] == ref["bbox"].tolist()
    assert list(props.shape_before_cropping) == ref["shape_before_cropping"].tolist()
    assert list(props.shape_after_cropping_and_before_resampling) == ref["shape_after_cropping"].tolist()
    assert np.allclose(props.original_spacing, ref["spacing"])
    assert ours.data.shape == ref["data"].shape and ours.data.dtype == np.float32
    diff = np.abs(ours.data.astype(np.float64) - ref["data"])
    print(f"{ds} {cfg} {case}: data max abs diff {diff.max():.3g}, mean abs diff {diff.mean():.3g}")
    assert diff.max() <= DATA_MAX_ABS and diff.mean() <= DATA_MEAN_ABS
    assert ours.seg.dtype == np.int16
    assert np.array_equal(ours.seg, ref["seg"]), f"{int((ours.seg != ref['seg']).sum())} segmentation voxels differ"
    ref_locations = {_key(k): ref[k] for k in ref.files if k.startswith("loc_")}
    assert list(props.class_locations) == list(ref_locations)
    for key, coords in ref_locations.items():
        assert np.array_equal(props.class_locations[key], coords), f"class {key}"


def test_resampling_matches_reference() -> None:
    spacings = json.loads((GOLDEN / "resampling_spacings.json").read_text(encoding="utf-8"))
    ref = np.load(GOLDEN / "resampling_cases.npz")
    data, seg = ref["data"], ref["seg"]
    for i, (cur, new) in enumerate(spacings):
        shape = compute_new_shape(data.shape[1:], cur, new)
        ours = resample_data_or_seg_to_shape(data, shape, cur, new, is_seg=False, order=3, order_z=0)
        diff = np.abs(ours.astype(np.float64) - ref[f"data_{i}"])
        print(f"{cur} -> {new}: order 3 max abs diff {diff.max():.3g}")
        assert diff.max() < 1e-5, (cur, new)
        probs = resample_data_or_seg_to_shape(data, shape, cur, new, is_seg=False, order=1, order_z=0)
        assert np.abs(probs.astype(np.float64) - ref[f"prob_{i}"]).max() < 1e-5, (cur, new)
        labels = resample_data_or_seg_to_shape(seg, shape, cur, new, is_seg=True, order=1, order_z=0)
        assert labels.dtype == seg.dtype
        assert np.array_equal(labels, ref[f"seg_{i}"]), (cur, new, int((labels != ref[f"seg_{i}"]).sum()))
