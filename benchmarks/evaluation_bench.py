"""Folder evaluation speed: the reference's ``compute_metrics_on_folder`` against ``autounet.evaluation.evaluate``.

Data: the 208 paired Hippocampus label maps as references and, as predictions, the same maps slightly perturbed
(deterministically: each case shifted by one voxel along a random axis, plus one label dilated or eroded by one
voxel), written once to ``.bench_cache/evaluation/``.

Both sides use the same number of worker processes (a spawn pool each) and are timed end to end, pool start-up
included: the reference inside its own venv (``run_reference_python``), autounet in a fresh interpreter. autounet
is timed twice: with the surface metrics (NSD at 2 mm, HD95) and without (the reference computes none). The
overlap metrics of every case and label are compared with the reference's (they must be identical).

Usage::

    python benchmarks/evaluation_bench.py [--workers 2] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference import REPO_ROOT, run_reference_python  # noqa: E402

CACHE = REPO_ROOT / ".bench_cache" / "evaluation"
SOURCE = REPO_ROOT.parent / "shared" / "datasets" / "Hippocampus"


def prepare(root: Path = CACHE) -> tuple[Path, Path]:
    """References and perturbed predictions (idempotent)."""
    from scipy import ndimage

    from autounet.io import read_segmentation, write_segmentation

    ref_dir, pred_dir = root / "ref", root / "pred"
    if (root / ".done").is_file():
        return ref_dir, pred_dir
    ref_dir.mkdir(parents=True, exist_ok=True)
    pred_dir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(2024)
    cases = sorted(p.name for p in (SOURCE / "images").glob("*.nii.gz") if (SOURCE / "labels" / p.name).is_file())
    for name in cases:
        seg, geometry = read_segmentation(SOURCE / "labels" / name)
        write_segmentation(seg[0], ref_dir / name, geometry)
        pred = np.roll(seg[0], int(rng.choice([-1, 1])), axis=int(rng.integers(0, 3)))
        label = int(rng.integers(1, 3))
        mask = pred == label
        pred = pred.copy()
        if rng.random() < 0.5:
            pred[ndimage.binary_dilation(mask) & (pred == 0)] = label
        else:
            pred[mask & ~ndimage.binary_erosion(mask)] = 0
        write_segmentation(pred, pred_dir / name, geometry)
    (root / ".done").touch()
    return ref_dir, pred_dir


def run_reference(ref_dir: Path, pred_dir: Path, out: Path, workers: int) -> float:
    code = textwrap.dedent(f"""
        import time
        from nnunetv2.evaluation.evaluate_predictions import compute_metrics_on_folder
        from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO
        if __name__ == "__main__":
            t = time.perf_counter()
            compute_metrics_on_folder({str(ref_dir)!r}, {str(pred_dir)!r}, {str(out)!r}, SimpleITKIO(), ".nii.gz",
                                      [1, 2], None, {workers})
            print(time.perf_counter() - t)
    """)
    script = CACHE / "ref_eval.py"
    script.write_text(code)
    stdout = run_reference_python(f"import runpy; runpy.run_path({str(script)!r}, run_name='__main__')", CACHE)
    return float(stdout.strip().splitlines()[-1])


def run_ours(ref_dir: Path, pred_dir: Path, out: Path, workers: int, *, surface: bool) -> float:
    code = textwrap.dedent(f"""
        import time
        from autounet.evaluation import evaluate
        if __name__ == "__main__":
            t = time.perf_counter()
            evaluate({str(pred_dir)!r}, {str(ref_dir)!r}, labels=[1, 2], file_ending=".nii.gz",
                     nsd_tolerance_mm={2.0 if surface else None}, workers={workers}, output={str(out)!r})
            print(time.perf_counter() - t)
    """)
    script = CACHE / "our_eval.py"
    script.write_text(code)
    proc = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, encoding="utf-8", errors="replace", check=True)
    return float(proc.stdout.strip().splitlines()[-1])


def compare(ref_summary: Path, our_summary: Path) -> int:
    """Number of (case, label, metric) overlap values that differ between the two summaries."""
    ref = json.loads(ref_summary.read_text(encoding="utf-8"))
    ours = json.loads(our_summary.read_text(encoding="utf-8"))
    ref_cases = {Path(c["prediction_file"]).name: c["metrics"] for c in ref["metric_per_case"]}
    diffs = 0
    for case in ours["metric_per_case"]:
        theirs = ref_cases[Path(case["prediction_file"]).name]
        for label, metrics in case["metrics"].items():
            for m in ("Dice", "IoU", "TP", "FP", "FN", "TN", "n_pred", "n_ref"):
                a, b = metrics[m], theirs[label][m]
                if not (a == b or (a != a and b != b)):
                    diffs += 1
    return diffs + abs(len(ref_cases) - len(ours["metric_per_case"]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    ref_dir, pred_dir = prepare()
    n = len(list(pred_dir.glob("*.nii.gz")))
    times: dict[str, list[float]] = {"reference": [], "autounet (Dice/IoU/counts)": [],
                                     "autounet (+ NSD, HD95)": []}
    for _ in range(args.repeats):
        times["reference"].append(run_reference(ref_dir, pred_dir, CACHE / "ref_summary.json", args.workers))
        times["autounet (Dice/IoU/counts)"].append(
            run_ours(ref_dir, pred_dir, CACHE / "our_summary_overlap.json", args.workers, surface=False))
        times["autounet (+ NSD, HD95)"].append(
            run_ours(ref_dir, pred_dir, CACHE / "our_summary.json", args.workers, surface=True))
    diffs = compare(CACHE / "ref_summary.json", CACHE / "our_summary.json")
    ours = json.loads((CACHE / "our_summary.json").read_text(encoding="utf-8"))
    ref = json.loads((CACHE / "ref_summary.json").read_text(encoding="utf-8"))
    base = min(times["reference"])
    print(f"{n} Hippocampus cases, labels 1 and 2, {args.workers} worker processes, best of {args.repeats}")
    print(f"{'implementation':<30}{'seconds':>10}{'ms/case':>10}{'speed-up vs reference':>24}")
    for name, ts in times.items():
        best = min(ts)
        print(f"{name:<30}{best:>10.2f}{1000 * best / n:>10.1f}{base / best:>23.2f}x")
    print(f"overlap metrics differing from the reference: {diffs} (of {n * 2 * 8})")
    print(f"foreground mean Dice: reference {ref['foreground_mean']['Dice']:.6f}, "
          f"autounet {ours['foreground_mean']['Dice']:.6f}; NSD(2 mm) {ours['foreground_mean']['NSD']:.4f}, "
          f"HD95 {ours['foreground_mean']['HD95']:.3f} mm")


if __name__ == "__main__":
    start = time.perf_counter()
    main()
    print(f"(total benchmark time {time.perf_counter() - start:.0f} s)")
