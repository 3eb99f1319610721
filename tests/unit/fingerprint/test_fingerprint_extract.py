"""Per-case analysis vs an independent re-implementation of the reference, aggregation, extraction, schema."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy.ndimage import binary_fill_holes

from autounet.errors import DatasetError, SchemaError
from autounet.fingerprint import aggregate, analyze_case, ensure_fingerprint, extract
from autounet.schemas.fingerprint import REFERENCE_KEYS, Fingerprint, load_fingerprint, save_fingerprint


def _case(rng: np.random.Generator, shape=(10, 12, 14), channels: int = 2) -> tuple[np.ndarray, np.ndarray]:
    images = np.zeros((channels, *shape), np.float32)
    images[:, 2:-1, 1:-3, 3:-2] = rng.integers(1, 400, (channels, shape[0] - 3, shape[1] - 4, shape[2] - 5))
    seg = np.zeros((1, *shape), np.float32)
    seg[0, 3:6, 4:8, 5:9] = 1
    seg[0, 6:8, 4:8, 5:9] = 2
    seg[0, 0, 0, 0] = 1  # foreground outside the non-zero region: cropped away, as in the reference
    return images, seg


def _reference_case(images: np.ndarray, seg: np.ndarray, n: int) -> dict:
    """The reference's algorithm written out directly (fill holes, bbox, -1 outside, RandomState.choice)."""
    mask = binary_fill_holes(np.any(images != 0, axis=0))
    where = np.argwhere(mask)
    lo, hi = where.min(0), where.max(0) + 1
    crop = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    s = seg[0][crop].copy()
    s[(s == 0) & ~mask[crop]] = -1
    fg = s > 0
    rs = np.random.RandomState(1234)
    samples = [rs.choice(images[c][crop][fg], n, replace=True) for c in range(images.shape[0])]
    return {"shape": tuple(int(b - a) for a, b in zip(lo, hi, strict=True)), "samples": samples,
            "relative": float(np.prod(hi - lo) / np.prod(images.shape[1:]))}


def test_analyze_case_matches_reference_algorithm(rng: np.random.Generator) -> None:
    images, seg = _case(rng)
    ours = analyze_case(images, seg, spacing=(3.0, 1.0, 1.0), num_samples=777)
    ref = _reference_case(images, seg, 777)
    assert ours.shape_after_crop == ref["shape"] == (7, 8, 9)
    assert ours.relative_size_after_crop == pytest.approx(ref["relative"])
    for sample, expected in zip(ours.samples, ref["samples"], strict=True):
        np.testing.assert_array_equal(np.repeat(sample.values, sample.counts), np.sort(expected))


def test_aggregate_matches_concatenated_reference_statistics(rng: np.random.Generator) -> None:
    cases = [_case(rng, shape=(10 + i, 12, 14)) for i in range(5)]
    ours = aggregate([analyze_case(im, sg, spacing=(1.0, 1.0, 1.0), num_samples=500, case_id=f"c{i}")
                      for i, (im, sg) in enumerate(cases)], num_channels=2)
    refs = [_reference_case(im, sg, 500) for im, sg in cases]
    for c in range(2):
        allv = np.concatenate([r["samples"][c] for r in refs])
        p = ours.foreground_intensity_properties_per_channel[c]
        p0, med, p99 = np.percentile(allv, (0.5, 50.0, 99.5))
        assert (p.min, p.max, p.median, p.percentile_00_5, p.percentile_99_5) == (
            float(allv.min()), float(allv.max()), float(med), float(p0), float(p99))
        assert p.mean == pytest.approx(float(np.mean(allv)), rel=1e-6)
        assert p.std == pytest.approx(float(np.std(allv)), rel=1e-5)
    assert ours.median_relative_size_after_cropping == pytest.approx(float(np.median([r["relative"] for r in refs])))
    assert ours.case_identifiers == ("c0", "c1", "c2", "c3", "c4") and ours.intensity_sampling["exact"]


@pytest.mark.parametrize(("images", "seg", "message"), [
    (np.full((1, 3, 3, 3), np.nan, np.float32), np.zeros((1, 3, 3, 3)), "NaN"),
    (np.ones((1, 3, 3, 3), np.float32), np.zeros((1, 3, 3, 4)), "differ"),
])
def test_bad_case_is_a_dataset_error(images, seg, message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        analyze_case(images, seg, spacing=(1, 1, 1), num_samples=5, case_id="bad_case")


def test_aggregate_errors(rng: np.random.Generator) -> None:
    images, seg = _case(rng)
    summary = analyze_case(images, seg, spacing=(1, 1, 1), num_samples=5, case_id="x")
    with pytest.raises(DatasetError, match="declares 3"):
        aggregate([summary], num_channels=3)
    empty = analyze_case(images, np.zeros_like(seg), spacing=(1, 1, 1), num_samples=5)
    with pytest.raises(DatasetError, match="no case has any foreground"):
        aggregate([empty], num_channels=2)
    with pytest.raises(DatasetError, match="no training cases"):
        aggregate([], num_channels=2)


def _write_dataset(root: Path, n: int = 3) -> Path:
    import SimpleITK as sitk

    rng = np.random.default_rng(3)
    ds = root / "raw" / "Dataset901_FP"
    (ds / "imagesTr").mkdir(parents=True)
    (ds / "labelsTr").mkdir()
    for i in range(n):
        images, seg = _case(rng, channels=1)
        img = sitk.GetImageFromArray(images[0])
        img.SetSpacing((1.0, 1.0, 2.5))
        sitk.WriteImage(img, str(ds / "imagesTr" / f"c{i}_0000.nii.gz"))
        lab = sitk.GetImageFromArray(seg[0].astype(np.uint8))
        lab.SetSpacing((1.0, 1.0, 2.5))  # the label must share the image's geometry (plan enforces verify's rule)
        sitk.WriteImage(lab, str(ds / "labelsTr" / f"c{i}.nii.gz"))
    (ds / "dataset.json").write_text(json.dumps({"channel_names": {"0": "CT"}, "labels": {"background": 0, "x": 1,
                                                 "y": 2}, "numTraining": n, "file_ending": ".nii.gz"}))
    return ds


@pytest.fixture(scope="module")
def dataset_and_fingerprint(tmp_path_factory):
    from autounet.dataset import open_raw_dataset

    raw = open_raw_dataset(_write_dataset(tmp_path_factory.mktemp("fp")))
    return raw, extract(raw, workers=1)


def test_extract_on_disk(dataset_and_fingerprint) -> None:
    raw, fp = dataset_and_fingerprint
    assert fp.num_cases == 3 and fp.spacings[0] == (2.5, 1.0, 1.0) and fp.image_reader == "simpleitk"
    assert fp.shapes_after_crop[0] == (7, 8, 9) and fp.shapes_before_crop[0] == (10, 12, 14)
    assert fp.intensity_sampling["samples_per_case"] == 33333333
    assert fp.provenance["dataset_signature"]


def test_extract_in_parallel_is_identical(dataset_and_fingerprint) -> None:
    raw, fp = dataset_and_fingerprint
    assert extract(raw, workers=2).body() == fp.body()


def test_ensure_reuses_and_reference_format_loads(dataset_and_fingerprint, tmp_path, caplog) -> None:
    raw, fp = dataset_and_fingerprint
    path = tmp_path / "dataset_fingerprint.json"
    save_fingerprint(path, fp)
    assert ensure_fingerprint(raw, path).body() == fp.body()  # reused, not recomputed
    # a reference-written file (only the four keys) is readable and reused as the reference would
    path.write_text(json.dumps(fp.to_reference_dict()))
    loaded = ensure_fingerprint(raw, path)
    assert loaded.to_reference_dict() == fp.to_reference_dict() and loaded.case_identifiers == ()
    assert "no dataset signature" in caplog.text


def test_schema_keeps_reference_keys_and_rejects_unknown(dataset_and_fingerprint, tmp_path) -> None:
    _, fp = dataset_and_fingerprint
    d = fp.to_dict()
    assert all(k in d for k in REFERENCE_KEYS) and d["schema"] == "autounet/fingerprint"
    assert list(d["foreground_intensity_properties_per_channel"]["0"]) == [
        "mean", "median", "std", "min", "max", "percentile_99_5", "percentile_00_5"]
    assert Fingerprint.from_dict(d).body() == fp.body()
    path = tmp_path / "fp.json"
    save_fingerprint(path, fp)
    assert load_fingerprint(path).sha256() == fp.sha256()
    with pytest.raises(SchemaError, match="unknown key"):
        Fingerprint.from_dict({**d, "bogus": 1})
    with pytest.raises(SchemaError, match="missing key"):
        Fingerprint.from_dict({k: v for k, v in fp.to_reference_dict().items() if k != "spacings"})
