"""Synthetic fingerprints and dataset.json dicts for the planning tests."""

from __future__ import annotations

from autounet.schemas.fingerprint import Fingerprint, IntensityProperties

STATS = IntensityProperties(mean=100.0, median=95.0, std=20.0, min=0.0, max=300.0, percentile_99_5=250.0,
                            percentile_00_5=5.0)


def make_fingerprint(spacings: list[tuple[float, ...]], shapes: list[tuple[int, ...]], *, channels: int = 1,
                     relative_size: float = 1.0) -> Fingerprint:
    """A fingerprint with the given per-case geometry and dummy intensity statistics."""
    return Fingerprint(spacings=tuple(tuple(map(float, s)) for s in spacings),
                       shapes_after_crop=tuple(tuple(map(int, s)) for s in shapes),
                       foreground_intensity_properties_per_channel=(STATS,) * channels,
                       median_relative_size_after_cropping=relative_size)


def make_spec(channels: list[str], n_labels: int, num_training: int, ending: str = ".nii.gz") -> dict:
    """A reference-style dataset.json dict."""
    labels = {"background": 0, **{f"l{i}": i for i in range(1, n_labels)}}
    return {"channel_names": {str(i): c for i, c in enumerate(channels)}, "labels": labels,
            "numTraining": num_training, "file_ending": ending}


def write_raw_dataset(raw_root, name: str = "Dataset900_Tiny", *, n_cases: int = 4, shape=(12, 16, 14),
                      spacing=(2.0, 1.0, 1.0), channels=("MRI",), seed: int = 0):
    """A tiny NIfTI raw dataset (reference layout) with a zero border and a labelled box; returns its folder."""
    import json
    from pathlib import Path

    import numpy as np
    import SimpleITK as sitk

    rng = np.random.default_rng(seed)
    root = Path(raw_root) / name
    (root / "imagesTr").mkdir(parents=True)
    (root / "labelsTr").mkdir()
    for i in range(n_cases):
        seg = np.zeros(shape, np.uint8)
        seg[3:7, 4:9, 4:8] = 1
        seg[7:9, 4:9, 4:8] = 2
        for c in range(len(channels)):
            img = np.zeros(shape, np.float32)
            img[1:-1, 1:-1, 1:-1] = rng.normal(100 + 10 * c, 20, tuple(s - 2 for s in shape))
            im = sitk.GetImageFromArray(img)
            im.SetSpacing(tuple(float(s) for s in spacing[::-1]))
            sitk.WriteImage(im, str(root / "imagesTr" / f"case{i:02d}_{c:04d}.nii.gz"))
        lab = sitk.GetImageFromArray(seg)
        lab.SetSpacing(tuple(float(s) for s in spacing[::-1]))
        sitk.WriteImage(lab, str(root / "labelsTr" / f"case{i:02d}.nii.gz"))
    spec = {"channel_names": {str(i): c for i, c in enumerate(channels)},
            "labels": {"background": 0, "a": 1, "b": 2}, "numTraining": n_cases, "file_ending": ".nii.gz"}
    (root / "dataset.json").write_text(json.dumps(spec))
    return root
