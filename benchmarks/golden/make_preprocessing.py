"""Make the preprocessing golden files with the reference (nnunetv2 2.8.1) in its own venv.

Usage (from the repository root, takes a few minutes)::

    .venv/bin/python benchmarks/golden/make_preprocessing.py [--out tests/data/golden/preprocessing]

What it does:

1. **Hippocampus**: copies 3 cases (``hippocampus_001``, ``_003``, ``_004``) of ``../shared/datasets/Hippocampus``
   into a reference raw dataset ``Dataset004_Hippocampus`` (``imagesTr/<case>_0000.nii.gz``,
   ``labelsTr/<case>.nii.gz``, channel ``MRI``, labels background/anterior/posterior) and runs
   ``nnUNetv2_plan_and_preprocess -d 4 -c 3d_fullres 2d -np 1``.
2. **Synthetic anisotropic CT**: writes 3 synthetic CT volumes (HU values, zero outside a field-of-view band,
   spacings ``(3.0, 0.75, 0.75)``, ``(4.5, 0.8, 0.8)``, ``(5.0, 0.9, 0.9)`` mm, two organ labels) as ``Dataset005_SynthCT`` with channel
   ``CT``, and runs the same command. Its cases are resampled with the separate-z rule and normalized with CT
   normalization.
3. **Resampling cases**: runs the reference's ``resample_data_or_seg_to_shape`` on small random arrays for a set
   of spacing pairs that hit every branch of the separate-z rule (``resampling_cases.npz``).

For each dataset it stores: the raw input files (``<ds>/raw/``), the reference plans (``<ds>/nnUNetPlans.json``)
and, per case and configuration, the reference's preprocessed arrays and properties in
``<ds>/<configuration>/<case>.npz`` (``data`` float32, ``seg`` int16, ``bbox``, ``shape_before_cropping``,
``shape_after_cropping``, ``spacing``, and ``loc_<key>`` per class).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))

from reference import run_reference, run_reference_python  # noqa: E402

HIPPOCAMPUS_CASES = ("hippocampus_001", "hippocampus_003", "hippocampus_004")
SYNTH_SPACINGS = ((3.0, 0.75, 0.75), (4.5, 0.8, 0.8), (5.0, 0.9, 0.9))
CONFIGURATIONS = ("3d_fullres", "2d")

RESAMPLING_SPACINGS = [
    ((5.0, 0.8, 0.8), (1.0, 1.0, 1.0)),    # current anisotropic -> separate axis 0
    ((5.0, 0.8, 0.8), (3.0, 0.6, 0.6)),    # current anisotropic, z down-sampled
    ((1.0, 1.0, 1.0), (1.5, 0.7, 0.9)),    # isotropic, joint resampling
    ((1.0, 1.0, 1.0), (4.0, 1.0, 1.0)),    # target anisotropic -> separate axis from target
    ((0.24, 1.25, 1.25), (0.5, 1.0, 1.0)), # two axes share the largest spacing -> no separate axis
    ((2.0, 0.5, 2.0), (2.0, 0.4, 0.3)),    # anisotropic with tie on two axes -> joint
    ((0.7, 0.7, 3.5), (0.9, 0.9, 3.5)),    # separate axis 2, z unchanged
]


def synthetic_ct(z_spacing: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A small synthetic CT ``(z, y, x)`` in HU with 0 outside a field of view, and its labels (0, 1, 2)."""
    rng = np.random.default_rng(seed)
    nz = int(round(60.0 / z_spacing))
    z, y, x = np.mgrid[:nz, :64, :72].astype(np.float32)
    zc, yc, xc = (nz - 1) / 2, 31.5, 35.5
    body = ((y - yc) / 26) ** 2 + ((x - xc) / 30) ** 2 < 1
    image = np.where(body, 40.0, -1000.0).astype(np.float32)
    organ1 = ((z - zc) / (nz * 0.35)) ** 2 + ((y - yc - 4) / 10) ** 2 + ((x - xc + 8) / 12) ** 2 < 1
    organ2 = ((z - zc * 0.8) / (nz * 0.2)) ** 2 + ((y - yc + 6) / 6) ** 2 + ((x - xc - 10) / 7) ** 2 < 1
    image[organ1] = 120.0
    image[organ2] = 250.0
    image += rng.normal(0, 20, size=image.shape).astype(np.float32)
    image[:, :, :4] = 0.0   # outside the field of view: exactly zero -> cropped
    image[:, :3, :] = 0.0
    seg = np.zeros(image.shape, dtype=np.uint8)
    seg[organ1] = 1
    seg[organ2] = 2
    return image.astype(np.int16), seg


def write_nifti(array: np.ndarray, spacing_zyx: tuple[float, float, float], path: Path) -> None:
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(array)
    image.SetSpacing(tuple(float(s) for s in reversed(spacing_zyx)))
    sitk.WriteImage(image, str(path), useCompression=True)


def make_raw(root: Path, name: str, channel: str, labels: dict[str, int], cases: dict[str, tuple[Path, Path]]) -> Path:
    ds = root / "raw" / name
    (ds / "imagesTr").mkdir(parents=True)
    (ds / "labelsTr").mkdir(parents=True)
    for case, (image, label) in cases.items():
        shutil.copy(image, ds / "imagesTr" / f"{case}_0000.nii.gz")
        shutil.copy(label, ds / "labelsTr" / f"{case}.nii.gz")
    spec = {"channel_names": {"0": channel}, "labels": labels, "numTraining": len(cases), "file_ending": ".nii.gz"}
    (ds / "dataset.json").write_text(json.dumps(spec, indent=2))
    return ds


EXPORT_CODE = r'''
import json, pickle, sys
from pathlib import Path
import blosc2, numpy as np
pre = Path(sys.argv[1]); out = Path(sys.argv[2])
for cfg in sys.argv[3].split(","):
    folder = pre / f"nnUNetPlans_{cfg}"
    (out / cfg).mkdir(parents=True, exist_ok=True)
    for pkl in sorted(folder.glob("*.pkl")):
        case = pkl.stem
        props = pickle.loads(pkl.read_bytes())
        arrays = {
            "data": blosc2.open(str(folder / f"{case}.b2nd"))[...],
            "seg": blosc2.open(str(folder / f"{case}_seg.b2nd"))[...],
            "bbox": np.array(props["bbox_used_for_cropping"]),
            "shape_before_cropping": np.array(props["shape_before_cropping"]),
            "shape_after_cropping": np.array(props["shape_after_cropping_and_before_resampling"]),
            "spacing": np.array(props["spacing"]),
        }
        for key, value in props["class_locations"].items():
            name = "-".join(map(str, key)) if isinstance(key, tuple) else str(key)
            arrays[f"loc_{name}"] = np.asarray(value, dtype=np.int64).reshape(-1, 4)
        np.savez_compressed(out / cfg / f"{case}.npz", **arrays)
'''

RESAMPLE_CODE = r'''
import sys
import numpy as np
from nnunetv2.preprocessing.resampling.default_resampling import compute_new_shape, resample_data_or_seg_to_shape
cases = eval(sys.argv[1]); path = sys.argv[2]
rng = np.random.default_rng(7)
z, y, x = np.mgrid[:10, :28, :24]
seg = np.zeros((1, 10, 28, 24), np.int16)
seg[0][((z - 5) ** 2 / 12 + (y - 14) ** 2 / 80 + (x - 12) ** 2 / 50) < 1] = 1
seg[0][((z - 4) ** 2 / 4 + (y - 15) ** 2 / 16 + (x - 11) ** 2 / 16) < 1] = 2
seg[0][:, :2] = -1
data = (rng.normal(size=(1, 10, 28, 24)) + seg * 2).astype(np.float32)
out = {"data": data, "seg": seg}
for i, (cur, new) in enumerate(cases):
    shape = compute_new_shape(data.shape[1:], cur, new)
    out[f"data_{i}"] = resample_data_or_seg_to_shape(data, shape, cur, new, is_seg=False, order=3, order_z=0,
                                                     force_separate_z=None)
    out[f"seg_{i}"] = resample_data_or_seg_to_shape(seg, shape, cur, new, is_seg=True, order=1, order_z=0,
                                                    force_separate_z=None)
    out[f"prob_{i}"] = resample_data_or_seg_to_shape(data, shape, cur, new, is_seg=False, order=1, order_z=0,
                                                     force_separate_z=None)
np.savez_compressed(path, **out)
'''


def run_dataset(tmp: Path, out: Path, name: str, dataset_id: int) -> None:
    root = tmp
    run_reference(["nnUNetv2_plan_and_preprocess", "-d", str(dataset_id), "-c", *CONFIGURATIONS, "-np", "1"], root,
                  threads=1)
    pre = root / "preprocessed" / name
    target = out / name
    (target / "raw").mkdir(parents=True, exist_ok=True)
    for f in sorted((root / "raw" / name / "imagesTr").iterdir()):
        shutil.copy(f, target / "raw" / f.name)
    for f in sorted((root / "raw" / name / "labelsTr").iterdir()):
        shutil.copy(f, target / "raw" / f"{f.name[:-7]}_seg.nii.gz")
    shutil.copy(root / "raw" / name / "dataset.json", target / "dataset.json")
    shutil.copy(pre / "nnUNetPlans.json", target / "nnUNetPlans.json")
    code = EXPORT_CODE.replace("sys.argv[1]", repr(str(pre))).replace("sys.argv[2]", repr(str(target)))
    code = code.replace("sys.argv[3]", repr(",".join(CONFIGURATIONS)))
    run_reference_python(code, root, threads=1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "tests" / "data" / "golden" / "preprocessing")
    parser.add_argument("--datasets", type=Path, default=REPO.parent / "shared" / "datasets")
    parser.add_argument("--only-resampling", action="store_true", help="only remake resampling_cases.npz")
    args = parser.parse_args()
    out: Path = args.out
    out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        if not args.only_resampling:
            make_datasets(tmp, out, args.datasets)
        code = RESAMPLE_CODE.replace("sys.argv[1]", repr(repr(RESAMPLING_SPACINGS)))
        code = code.replace("sys.argv[2]", repr(str(out / "resampling_cases.npz")))
        run_reference_python(code, tmp, threads=1)
    (out / "resampling_spacings.json").write_text(json.dumps(RESAMPLING_SPACINGS) + "\n")
    print(f"golden files written to {out}")


def make_datasets(tmp: Path, out: Path, datasets: Path) -> None:
    """Reference raw datasets (Hippocampus subset, synthetic CT) -> plans and preprocessed golden arrays."""
    hip = datasets / "Hippocampus"
    make_raw(tmp, "Dataset004_Hippocampus", "MRI", {"background": 0, "anterior": 1, "posterior": 2},
             {c: (hip / "images" / f"{c}.nii.gz", hip / "labels" / f"{c}.nii.gz") for c in HIPPOCAMPUS_CASES})
    synth_dir = tmp / "synth"
    synth_dir.mkdir()
    synth_cases = {}
    for i, spacing in enumerate(SYNTH_SPACINGS):
        image, seg = synthetic_ct(spacing[0], seed=i)
        case = f"synthct_{i:03d}"
        write_nifti(image, spacing, synth_dir / f"{case}.nii.gz")
        write_nifti(seg, spacing, synth_dir / f"{case}_seg.nii.gz")
        synth_cases[case] = (synth_dir / f"{case}.nii.gz", synth_dir / f"{case}_seg.nii.gz")
    make_raw(tmp, "Dataset005_SynthCT", "CT", {"background": 0, "organ1": 1, "organ2": 2}, synth_cases)
    run_dataset(tmp, out, "Dataset004_Hippocampus", 4)
    run_dataset(tmp, out, "Dataset005_SynthCT", 5)


if __name__ == "__main__":
    main()
