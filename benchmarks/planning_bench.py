"""Benchmark: fingerprint extraction + experiment planning, autounet vs the reference (nnunetv2 2.8.1).

Both run as command-line programs on the same cores, in one run, on the Hippocampus dataset (208 cases, copied to
the reference's raw layout in a temporary workspace), with the same number of worker processes:

* fingerprint: ``autounet fingerprint 4 --clean -j N`` vs ``nnUNetv2_extract_fingerprint -d 4 --clean -np N``
* plan (default): ``autounet plan 4`` vs ``nnUNetv2_plan_experiment -d 4``
* plan (ResEnc L): ``autounet plan 4 --preset resenc-l`` vs ``nnUNetv2_plan_experiment -d 4 -pl nnUNetPlannerResEncL``

Usage: ``nice -n 10 .venv/bin/python benchmarks/planning_bench.py [--workers 2] [--cases 208]``.
Prints a table (seconds, ratio ours / reference; the goal is <= 0.5) and checks that both produced equal plans.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from reference import reference_env, reference_python  # noqa: E402

HIPPOCAMPUS = REPO.parent / "shared" / "datasets" / "Hippocampus"
NAME = "Dataset004_Hippocampus"


def make_raw(root: Path, cases: int) -> None:
    """Copy the image/label pairs into ``root/raw/Dataset004_Hippocampus`` (reference layout)."""
    raw = root / "raw" / NAME
    (raw / "imagesTr").mkdir(parents=True)
    (raw / "labelsTr").mkdir(parents=True)
    pairs = sorted(p.name for p in (HIPPOCAMPUS / "labels").glob("*.nii.gz")
                   if (HIPPOCAMPUS / "images" / p.name).is_file())[:cases]
    for f in pairs:
        shutil.copyfile(HIPPOCAMPUS / "images" / f, raw / "imagesTr" / f"{f[:-7]}_0000.nii.gz")
        shutil.copyfile(HIPPOCAMPUS / "labels" / f, raw / "labelsTr" / f)
    (raw / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "MRI"}, "labels": {"background": 0, "Anterior": 1, "Posterior": 2},
        "numTraining": len(pairs), "file_ending": ".nii.gz", "name": "Hippocampus"}))


PEAK = "import resource, subprocess, sys; subprocess.run(sys.argv[1:], check=True, capture_output=True); " \
       "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)"


def measured(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall-clock seconds and peak RSS (MiB) of the largest process of ``cmd``'s process tree."""
    start = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", PEAK, *cmd], check=True, env=env, capture_output=True, text=True, encoding="utf-8", errors="replace")
    return time.perf_counter() - start, int(out.stdout.strip().splitlines()[-1]) / 1024


def ours(root: Path, *args: str) -> tuple[float, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("nnUNet_", "AUTOUNET_"))}
    return measured([str(REPO / ".venv" / "bin" / "autounet"), args[0], "--workspace", str(root), "--quiet",
                     "--no-progress", *args[1:]], env)


def reference(root: Path, *args: str) -> tuple[float, float]:
    return measured([str(reference_python().parent / args[0]), *args[1:]], reference_env(root))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--cases", type=int, default=208)
    args = parser.parse_args()
    n = str(args.workers)
    with tempfile.TemporaryDirectory(prefix="autounet_planning_bench_") as tmp:
        ours_root, ref_root = Path(tmp) / "ours", Path(tmp) / "ref"
        make_raw(ours_root, args.cases)
        make_raw(ref_root, args.cases)
        reference_env(ref_root)  # creates the reference roots
        rows = [
            ("fingerprint", ours(ours_root, "fingerprint", "4", "--clean", "-j", n),
             reference(ref_root, "nnUNetv2_extract_fingerprint", "-d", "4", "--clean", "-np", n)),
            ("plan (default)", ours(ours_root, "plan", "4", "-j", n),
             reference(ref_root, "nnUNetv2_plan_experiment", "-d", "4")),
            ("plan (ResEnc L)", ours(ours_root, "plan", "4", "--preset", "resenc-l", "-j", n),
             reference(ref_root, "nnUNetv2_plan_experiment", "-d", "4", "-pl", "nnUNetPlannerResEncL")),
        ]
        same = check_equal(ours_root, ref_root)
        readable = reference_reads_our_fingerprint(ours_root, ref_root)
    total_a, total_b = sum(r[1][0] for r in rows), sum(r[2][0] for r in rows)
    print(f"Hippocampus, {args.cases} cases, {args.workers} worker process(es); wall-clock seconds, one run; peak RSS "
          "of the largest process\n")
    print("| step | autounet (s) | reference (s) | ratio | autounet peak MiB | reference peak MiB |")
    print("|---|---:|---:|---:|---:|---:|")
    for step, (a, ma), (b, mb) in rows:
        print(f"| {step} | {a:.2f} | {b:.2f} | {a / b:.2f} | {ma:.0f} | {mb:.0f} |")
    print(f"| total | {total_a:.2f} | {total_b:.2f} | {total_a / total_b:.2f} | | |")
    print(f"\nplans equal to the reference's in every field: {same}")
    print(f"reference planner reads our dataset_fingerprint.json and plans identically: {readable}")


def reference_reads_our_fingerprint(ours_root: Path, ref_root: Path) -> bool:
    """Run the reference planner on our fingerprint file (with our extra keys); same configurations?"""
    pre = ref_root / "preprocessed" / NAME
    expected = json.loads((pre / "nnUNetPlans.json").read_text(encoding="utf-8"))["configurations"]
    shutil.copyfile(ours_root / "preprocessed" / NAME / "dataset_fingerprint.json", pre / "dataset_fingerprint.json")
    reference(ref_root, "nnUNetv2_plan_experiment", "-d", "4", "-overwrite_plans_name", "FromOurFingerprint")
    got = json.loads((pre / "FromOurFingerprint.json").read_text(encoding="utf-8"))["configurations"]
    for config in (got, expected):
        for c in config.values():
            c.pop("data_identifier", None)
    return got == expected


def check_equal(ours_root: Path, ref_root: Path) -> bool:
    """Exported autounet plans == the reference's plans (both presets); the intensity mean/std (from the
    fingerprint) within the stated 1e-5 relative tolerance, everything else exactly."""
    sys.path.insert(0, str(REPO / "tests" / "unit" / "planning"))
    from _planning_golden import diff  # noqa: PLC0415

    from autounet.planning.reference import export_plans  # noqa: PLC0415
    from autounet.schemas.plans import load_plans  # noqa: PLC0415

    ok = True
    for name in ("nnUNetPlans", "nnUNetResEncUNetLPlans"):
        mine = export_plans(load_plans(ours_root / "preprocessed" / NAME / f"{name}.json"))
        theirs = json.loads((ref_root / "preprocessed" / NAME / f"{name}.json").read_text(encoding="utf-8"))
        a = mine.pop("foreground_intensity_properties_per_channel")
        b = theirs.pop("foreground_intensity_properties_per_channel")
        differences = diff(mine, theirs) + [
            f"intensity {c}.{k}: {a[c][k]} vs {v}" for c in b for k, v in b[c].items()
            if abs(a[c][k] - v) > 1e-5 * max(abs(v), 1e-12)]
        if differences:
            print(f"{name}: differences:\n" + "\n".join(differences[:20]))
            ok = False
    return ok


if __name__ == "__main__":
    main()
