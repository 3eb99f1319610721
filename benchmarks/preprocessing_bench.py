"""Preprocessing benchmark: the reference (nnunetv2 2.8.1) vs autounet on the same cases, same worker count.

Usage (from the repository root)::

    .venv/bin/python benchmarks/preprocessing_bench.py [--hippocampus-cases 40] [--ct-cases 4] [--workers 2]
                                                       [--rss] [--rss-reference]

Sections (each prints a table):

1. **Wall time**, one run each, back to back: ``nnUNetv2_preprocess -d D -c 3d_fullres 2d -np W`` against
   ``autounet preprocess D -c 3d_fullres 2d -j W`` (both whole command lines, interpreter start included), on
   (a) Hippocampus cases from ``../shared/datasets`` (1 mm isotropic, no resampling: crop, normalize, class
   locations, storage) and (b) synthetic anisotropic CT cases (HU, 48-60 slices of 256x256 at 4-5 x 0.7-0.9 mm:
   separate-z resampling, CT normalization, per-label segmentation resampling). Both use the plans the reference
   planned (imported into autounet with ``autounet.planning.reference.import_plans``); the outputs are compared.
2. **Patch read vs whole case** from each store (a random training patch of the configuration's patch size, median
   of 50 reads, against decompressing the whole case).
3. **Peak RSS** (``--rss``) of one worker preprocessing and storing a synthetic 512x512x600 CT volume
   (spacing 1 x 0.7 x 0.7 mm to 1 x 0.8 x 0.8 mm), measured in a fresh process with ``getrusage``;
   ``--rss-reference`` runs the reference's ``DefaultPreprocessor.run_case_save`` on the same file as well.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))

from reference import reference_env, reference_python, run_reference  # noqa: E402

CACHE = REPO / ".bench_cache" / "preprocessing"


# ---- data --------------------------------------------------------------------------------------------------------
def synthetic_ct(shape: tuple[int, int, int], seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A synthetic CT ``(z, y, x)`` in HU (int16, 0 outside a field of view) and labels 0/1/2/3 (uint8)."""
    rng = np.random.default_rng(seed)
    nz, ny, nx = shape
    z = np.arange(nz, dtype=np.float32)[:, None, None] / nz
    y = np.arange(ny, dtype=np.float32)[None, :, None] / ny
    x = np.arange(nx, dtype=np.float32)[None, None, :] / nx
    body = ((y - 0.5) / 0.42) ** 2 + ((x - 0.5) / 0.46) ** 2 < 1
    seg = np.zeros(shape, np.uint8)
    seg[(((z - 0.5) / 0.35) ** 2 + ((y - 0.55) / 0.15) ** 2 + ((x - 0.4) / 0.18) ** 2) < 1] = 1
    seg[(((z - 0.45) / 0.2) ** 2 + ((y - 0.45) / 0.08) ** 2 + ((x - 0.62) / 0.09) ** 2) < 1] = 2
    seg[(((z - 0.6) / 0.25) ** 2 + ((y - 0.62) / 0.05) ** 2 + ((x - 0.55) / 0.05) ** 2) < 1] = 3
    image = np.broadcast_to(np.where(body, 40.0, -1000.0), shape).astype(np.float32)
    image[seg == 1] = 120
    image[seg == 2] = 250
    image[seg == 3] = 600
    image += rng.normal(0, 15, size=shape).astype(np.float32)
    image[:, :, : nx // 40] = 0
    return image.astype(np.int16), seg


def write_nifti(array: np.ndarray, spacing_zyx: tuple[float, ...], path: Path) -> None:
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(array)
    image.SetSpacing(tuple(float(s) for s in reversed(spacing_zyx)))
    sitk.WriteImage(image, str(path), useCompression=True)


def make_raw(raw: Path, name: str, channel: str, labels: dict[str, int], cases: dict[str, tuple[Path, Path]]) -> None:
    ds = raw / name
    (ds / "imagesTr").mkdir(parents=True, exist_ok=True)
    (ds / "labelsTr").mkdir(parents=True, exist_ok=True)
    for case, (image, label) in cases.items():
        shutil.copy(image, ds / "imagesTr" / f"{case}_0000.nii.gz")
        shutil.copy(label, ds / "labelsTr" / f"{case}.nii.gz")
    spec = {"channel_names": {"0": channel}, "labels": labels, "numTraining": len(cases), "file_ending": ".nii.gz"}
    (ds / "dataset.json").write_text(json.dumps(spec, indent=2))


def hippocampus_cases(datasets: Path, n: int) -> dict[str, tuple[Path, Path]]:
    src = datasets / "Hippocampus"
    paired = sorted({p.name for p in (src / "labels").glob("*.nii.gz")} & {p.name for p in (src / "images").iterdir()})
    return {name[: -len(".nii.gz")]: (src / "images" / name, src / "labels" / name) for name in paired[:n]}


def ct_cases(n: int) -> dict[str, tuple[Path, Path]]:
    folder = CACHE / "ct_cases"
    folder.mkdir(parents=True, exist_ok=True)
    out = {}
    for i in range(n):
        spacing = (4.0 + 0.5 * (i % 3), 0.7 + 0.1 * (i % 3), 0.7 + 0.1 * (i % 3))
        shape = (48 + 6 * (i % 3), 256, 256)
        case = f"ct_{i:03d}"
        image, label = folder / f"{case}.nii.gz", folder / f"{case}_seg.nii.gz"
        if not (image.is_file() and label.is_file()):
            ct, seg = synthetic_ct(shape, seed=i)
            write_nifti(ct, spacing, image)
            write_nifti(seg, spacing, label)
        out[case] = (image, label)
    return out


# ---- timed runs --------------------------------------------------------------------------------------------------
def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system of the command and all its worker processes)."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, encoding="utf-8", errors="replace")
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} failed:\n{proc.stderr[-3000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu


def our_env(root: Path) -> dict[str, str]:
    env = dict(os.environ)
    for var in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results", "AUTOUNET_HOME"):
        env.pop(var, None)
    env.update({"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1"})
    return env


def prepare_ours(ref_root: Path, our_root: Path, name: str) -> None:
    """Our workspace on the same raw files, with the reference's plans imported."""
    from autounet.planning.reference import import_plans
    from autounet.schemas.plans import save_plans
    from autounet.workspace import Workspace

    ws = Workspace.at(our_root).ensure()
    if not (ws.raw / name).exists():
        (ws.raw / name).symlink_to(ref_root / "raw" / name)
    plans = import_plans(json.loads((ref_root / "preprocessed" / name / "nnUNetPlans.json").read_text(encoding="utf-8")))
    save_plans(ws.plans_file(name, "nnUNetPlans"), plans)


def compare_outputs(ref_root: Path, our_root: Path, name: str, configuration: str) -> tuple[float, int, int]:
    """Max |data diff|, differing seg voxels and number of cases between the two stores."""
    import blosc2

    from autounet.preprocessing import CaseStore

    ref_folder = ref_root / "preprocessed" / name / f"nnUNetPlans_{configuration}"
    store = CaseStore(our_root / "preprocessed" / name / f"nnUNetPlans_{configuration}")
    max_diff, seg_diff = 0.0, 0
    for case in store.case_ids():
        data, seg = store.load(case)
        ref_data = blosc2.open(str(ref_folder / f"{case}.b2nd"))[...]
        ref_seg = blosc2.open(str(ref_folder / f"{case}_seg.b2nd"))[...]
        max_diff = max(max_diff, float(np.abs(data.astype(np.float64) - ref_data).max()))
        seg_diff += int((seg != ref_seg).sum())
    return max_diff, seg_diff, len(store.case_ids())


def patch_reads(ref_root: Path, our_root: Path, name: str, configuration: str) -> dict[str, tuple[float, float]]:
    """Median seconds to read a random patch vs the whole case, per store (largest case)."""
    import blosc2

    from autounet.preprocessing import CaseStore
    from autounet.schemas.plans import load_plans

    plans = load_plans(our_root / "preprocessed" / name / "nnUNetPlans.json")
    patch = plans.configuration(configuration).patch_size
    store = CaseStore(our_root / "preprocessed" / name / f"nnUNetPlans_{configuration}")
    case = max(store.case_ids(), key=lambda c: int(np.prod(store.properties(c).shape_after_resampling)))
    ref_folder = ref_root / "preprocessed" / name / f"nnUNetPlans_{configuration}"
    opened = {
        "reference": blosc2.open(str(ref_folder / f"{case}.b2nd"), mode="r", mmap_mode="r", dparams={"nthreads": 1}),
        "autounet": store.open(case).data,
    }
    rng = np.random.default_rng(0)
    out = {}
    for label, array in opened.items():
        shape = array.shape[1:]
        size = [min(p, s) for p, s in zip(((1, *patch) if len(patch) == 2 else patch), shape)]
        reads = []
        for _ in range(50):
            lo = [int(rng.integers(0, s - p + 1)) for s, p in zip(shape, size)]
            start = time.perf_counter()
            _ = array[(slice(None), *(slice(a, a + p) for a, p in zip(lo, size)))]
            reads.append(time.perf_counter() - start)
        whole = []
        for _ in range(5):
            start = time.perf_counter()
            _ = array[...]
            whole.append(time.perf_counter() - start)
        out[label] = (statistics.median(reads), statistics.median(whole))
    return out


# ---- peak RSS ----------------------------------------------------------------------------------------------------
RSS_OURS = r'''
import resource, sys, time
from pathlib import Path
from autounet.labels import LabelSpec
from autounet.preprocessing.run import CaseTask, preprocess_and_store
from autounet.schemas.plans import load_plans
plans = load_plans(sys.argv[1]); image, label, out = Path(sys.argv[2]), Path(sys.argv[3]), Path(sys.argv[4])
labels = LabelSpec.from_labels({"background": 0, "a": 1, "b": 2, "c": 3})
task = CaseTask("big", (image,), label, plans, "3d_fullres", labels, out, "x")
t = time.perf_counter(); r = preprocess_and_store(task); t = time.perf_counter() - t
u = resource.getrusage(resource.RUSAGE_SELF)
print(u.ru_maxrss / 1024 ** 2, t, u.ru_utime + u.ru_stime)
'''

RSS_REFERENCE = r'''
import json, resource, sys, time
from nnunetv2.preprocessing.preprocessors.default_preprocessor import DefaultPreprocessor
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
plans = PlansManager(json.load(open(sys.argv[1])))
dataset_json = {"labels": {"background": 0, "a": 1, "b": 2, "c": 3}, "channel_names": {"0": "CT"}, "file_ending": ".nii.gz"}
pp = DefaultPreprocessor(verbose=False)
t = time.perf_counter()
pp.run_case_save(sys.argv[4] + "/big", [sys.argv[2]], sys.argv[3], plans, plans.get_configuration("3d_fullres"), dataset_json)
t = time.perf_counter() - t
u = resource.getrusage(resource.RUSAGE_SELF)
print(u.ru_maxrss / 1024 ** 2, t, u.ru_utime + u.ru_stime)
'''


def big_ct_files() -> tuple[Path, Path]:
    folder = CACHE / "big_ct"
    folder.mkdir(parents=True, exist_ok=True)
    image, label = folder / "big_ct.nii.gz", folder / "big_ct_seg.nii.gz"
    if not (image.is_file() and label.is_file()):
        ct, seg = synthetic_ct((600, 512, 512), seed=42)
        write_nifti(ct, (1.0, 0.7, 0.7), image)
        write_nifti(seg, (1.0, 0.7, 0.7), label)
    return image, label


def big_ct_plans(path: Path, reference_path: Path) -> None:
    """Plans for the 512x512x600 case: 3d_fullres at 1 x 0.8 x 0.8 mm, CT normalization (ours and reference)."""
    from autounet.planning.reference import export_plans, import_plans
    from autounet.schemas.plans import save_plans

    ref_file = CACHE / "ct_reference_plans.json"
    plans = import_plans(json.loads(ref_file.read_text(encoding="utf-8")))
    configs = dict(plans.configurations)
    configs["3d_fullres"] = {**plans.resolved_dict("3d_fullres"), "spacing": [1.0, 0.8, 0.8],
                             "patch_size": [128, 128, 128]}
    from dataclasses import replace

    plans = replace(plans, configurations={"3d_fullres": configs["3d_fullres"]})
    save_plans(path, plans)
    reference_path.write_text(json.dumps(export_plans(plans), indent=2))


def _read_times(array, patch: tuple[int, ...], n: int = 50) -> tuple[float, float]:
    """Median seconds of a random ``patch`` read and of a whole-array read of a lazy ``(c, z, y, x)`` array."""
    rng = np.random.default_rng(0)
    shape = array.shape[1:]
    reads = []
    for _ in range(n):
        lo = [int(rng.integers(0, s - p + 1)) for s, p in zip(shape, patch)]
        start = time.perf_counter()
        _ = array[(slice(None), *(slice(a, a + p) for a, p in zip(lo, patch)))]
        reads.append(time.perf_counter() - start)
    start = time.perf_counter()
    _ = array[...]
    return statistics.median(reads), time.perf_counter() - start


def peak_rss(with_reference: bool) -> tuple[list[list[str]], list[list[str]]]:
    """Peak RSS rows and patch-read rows for the 512x512x600 CT."""
    import blosc2

    from autounet.preprocessing import CaseStore

    image, label = big_ct_files()
    rows, reads = [], []
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        ours, theirs = tmp_path / "plans.json", tmp_path / "ref_plans.json"
        big_ct_plans(ours, theirs)
        for label_, script, py, env in (
                ("autounet", RSS_OURS, sys.executable, our_env(tmp_path)),
                ("reference", RSS_REFERENCE, str(reference_python()), reference_env(tmp_path / "ref", threads=1))):
            if label_ == "reference" and not with_reference:
                continue
            out_dir = tmp_path / f"out_{label_}"
            out_dir.mkdir()
            plans_file = ours if label_ == "autounet" else theirs
            out = subprocess.run([py, "-c", script, str(plans_file), str(image), str(label), str(out_dir)], env=env,
                                 capture_output=True, text=True, encoding="utf-8", errors="replace")
            if out.returncode != 0:
                raise RuntimeError(out.stderr[-3000:])
            rss, seconds, cpu = (float(v) for v in out.stdout.split()[:3])
            rows.append([label_, f"{rss:.2f} GiB", f"{seconds:.0f} s", f"{cpu:.0f} s"])
            if label_ == "autounet":
                array = CaseStore(out_dir).open("big").data
            else:
                array = blosc2.open(str(out_dir / "big.b2nd"), mode="r", mmap_mode="r", dparams={"nthreads": 1})
            patch, whole = _read_times(array, (128, 128, 128), n=20)
            size = sum(f.stat().st_size for f in out_dir.iterdir()) / 2 ** 20
            reads.append([f"512x512x600 CT -> {tuple(array.shape[1:])}", label_, f"{patch * 1e3:.1f} ms",
                          f"{whole * 1e3:.0f} ms", f"{whole / patch:.0f}x", f"{size:.0f} MiB"])
    return rows, reads


# ---- main --------------------------------------------------------------------------------------------------------
def bench_dataset(root: Path, name: str, dataset_id: int, workers: int) -> list[list[str]]:
    ref_root, our_root = root / "ref", root / "ours"
    configs = ["3d_fullres", "2d"]
    run_reference(["nnUNetv2_plan_and_preprocess", "-d", str(dataset_id), "--no_pp", "-npfp", str(workers)],
                  ref_root, threads=1)
    prepare_ours(ref_root, our_root, name)
    if dataset_id == 6:
        shutil.copy(ref_root / "preprocessed" / name / "nnUNetPlans.json", CACHE / "ct_reference_plans.json")
    ref_cmd = [str(reference_python().parent / "nnUNetv2_preprocess"), "-d", str(dataset_id), "-c", *configs,
               "-np", str(workers), str(workers)]
    our_cmd = [sys.executable, "-m", "autounet", "preprocess", str(dataset_id), "-c", *configs, "-j", str(workers),
               "--workspace", str(our_root), "--quiet"]
    (ref_wall, ref_cpu), (our_wall, our_cpu) = timed(ref_cmd, reference_env(ref_root, threads=1)), timed(
        our_cmd, our_env(our_root))
    rows = [[name, f"{ref_wall:.1f} / {ref_cpu:.1f}", f"{our_wall:.1f} / {our_cpu:.1f}",
             f"{our_wall / ref_wall:.2f} / {our_cpu / ref_cpu:.2f}"]]
    for config in configs:
        diff, seg_diff, n = compare_outputs(ref_root, our_root, name, config)
        rows.append([f"  {config}: {n} cases", f"max abs data diff {diff:.2g}", f"seg voxels differing {seg_diff}",
                     ""])
    return rows


def print_table(header: list[str], rows: list[list[str]]) -> None:
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(header, widths)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        print("| " + " | ".join(str(v).ljust(w) for v, w in zip(r, widths)) + " |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hippocampus-cases", type=int, default=40)
    parser.add_argument("--ct-cases", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--datasets", type=Path, default=REPO.parent / "shared" / "datasets")
    parser.add_argument("--rss", action="store_true", help="measure peak RSS on a 512x512x600 CT (slow)")
    parser.add_argument("--rss-reference", action="store_true", help="also the reference's peak RSS (very slow)")
    args = parser.parse_args()
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        make_raw(root / "ref" / "raw", "Dataset004_Hippocampus", "MRI",
                 {"background": 0, "anterior": 1, "posterior": 2},
                 hippocampus_cases(args.datasets, args.hippocampus_cases))
        make_raw(root / "ref" / "raw", "Dataset006_BenchCT", "CT",
                 {"background": 0, "a": 1, "b": 2, "c": 3}, ct_cases(args.ct_cases))
        rows = bench_dataset(root, "Dataset004_Hippocampus", 4, args.workers)
        rows += bench_dataset(root, "Dataset006_BenchCT", 6, args.workers)
        print(f"\n1. Preprocessing 3d_fullres + 2d, {args.workers} workers each: wall / CPU seconds\n")
        print_table(["dataset", "reference", "autounet", "autounet / reference"], rows)
        print("\n2. Reading one random training patch vs the whole case (median seconds)\n")
        reads = []
        for name, config in (("Dataset004_Hippocampus", "3d_fullres"), ("Dataset006_BenchCT", "3d_fullres")):
            for store, (patch, whole) in patch_reads(root / "ref", root / "ours", name, config).items():
                reads.append([f"{name} {config}", store, f"{patch * 1e3:.2f} ms", f"{whole * 1e3:.1f} ms",
                              f"{whole / patch:.0f}x"])
        print_table(["case (largest)", "store", "random patch", "whole case", "whole / patch"], reads)
    if args.rss or args.rss_reference:
        print("\n3. One worker preprocessing + storing a 512x512x600 CT (1 x 0.7 x 0.7 -> 1 x 0.8 x 0.8 mm)\n")
        rows, reads = peak_rss(args.rss_reference)
        print_table(["implementation", "peak RSS", "wall", "CPU"], rows)
        print("\n   Reading a random 128^3 patch of it vs the whole case (median of 20 reads)\n")
        print_table(["case", "store", "random patch", "whole case", "whole / patch", "files"], reads)


if __name__ == "__main__":
    main()
