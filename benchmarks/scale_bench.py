"""Scale-out benchmark: per-case throughput, scheduling overhead per case, and preprocessing vs the reference.

Usage (from the repository root)::

    .venv/bin/python benchmarks/scale_bench.py [--cases 208] [--tasks 400] [--repeats 2] [--skip-reference]

Sections (each prints a table; ``uptime``'s load average is printed first and last - the figures are only
comparable on an idle machine):

1. **Per-case throughput**: ``autounet preprocess 4 -c 3d_fullres -j W`` (whole command line, fresh store) on the
   Hippocampus cases from ``../shared/datasets`` with W = 1 and 2 local workers: wall seconds, CPU seconds, cases/s.
2. **Scheduling overhead per case**: ``_parallel.map_cases`` of a no-op task over ``--tasks`` items on the local
   process pool (2 workers, start-up included) and on a local Dask cluster of 2 worker processes (client already
   connected; cluster start-up shown separately): milliseconds per task.
3. **Preprocessing vs the reference**, side by side, alternating, ``--repeats`` times:
   ``nnUNetv2_preprocess -d 4 -c 3d_fullres 2d -np 2 2`` against ``autounet preprocess 4 -c 3d_fullres 2d -j 2``
   on the same cases with the reference's plans imported; each run starts from an empty store; the outputs of
   both are compared (max abs data difference, differing label voxels).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
sys.path.insert(0, str(REPO / "src"))

from preprocessing_bench import (
    compare_outputs,
    hippocampus_cases,
    make_raw,
    our_env,
    prepare_ours,
    print_table,
    timed,
)
from reference import reference_env, reference_python, run_reference

NAME = "Dataset004_Hippocampus"
CONFIGS = ["3d_fullres", "2d"]


def load() -> str:
    return " ".join(os.getloadavg().__repr__().strip("()").split(", "))


def _noop(x: int) -> int:
    return x


def _fresh(root: Path) -> None:
    """Remove the stores and ground-truth copies of a workspace (ours or the reference's)."""
    folder = root / "preprocessed" / NAME
    for sub in [*folder.glob("nnUNetPlans_*"), folder / "gt_segmentations"]:
        if sub.is_dir():
            shutil.rmtree(sub)


def ours_cmd(root: Path, configs: list[str], workers: int) -> list[str]:
    return [sys.executable, "-m", "autounet", "preprocess", "4", "-c", *configs, "-j", str(workers), "--workspace",
            str(root), "--quiet"]


def env_ours(root: Path) -> dict[str, str]:
    env = our_env(root)
    env["PYTHONPATH"] = str(REPO / "src")
    return env


def throughput(our_root: Path, n_cases: int) -> list[list[str]]:
    rows = []
    for workers in (1, 2):
        _fresh(our_root)
        wall, cpu = timed(ours_cmd(our_root, ["3d_fullres"], workers), env_ours(our_root))
        rows.append([f"{workers}", f"{wall:.2f}", f"{cpu:.2f}", f"{n_cases / wall:.1f}",
                     f"{cpu / n_cases * 1e3:.1f}"])
    return rows


def scheduling(tasks: int) -> list[list[str]]:
    from autounet._parallel import map_cases

    rows = []
    items = list(range(tasks))
    start = time.perf_counter()
    assert map_cases(_noop, items, workers=2) == items
    pool = time.perf_counter() - start
    rows.append(["local process pool (2 workers)", "-", f"{pool:.2f}", f"{pool / tasks * 1e3:.2f}"])
    try:
        import distributed
    except ImportError:
        rows.append(["local Dask cluster", "dask not installed", "", ""])
        return rows
    start = time.perf_counter()
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as lc, \
            distributed.Client(lc) as client:
        setup = time.perf_counter() - start
        client.submit(_noop, 0).result()  # workers warm
        start = time.perf_counter()
        assert map_cases(_noop, items, executor=client) == items
        dask = time.perf_counter() - start
    rows.append(["local Dask cluster (2 worker processes)", f"{setup:.2f}", f"{dask:.2f}",
                 f"{dask / tasks * 1e3:.2f}"])
    return rows


def versus_reference(ref_root: Path, our_root: Path, repeats: int) -> tuple[list[list[str]], list[list[str]]]:
    ref_cmd = [str(reference_python().parent / "nnUNetv2_preprocess"), "-d", "4", "-c", *CONFIGS, "-np", "2", "2"]
    ref_times, our_times = [], []
    for _ in range(repeats):
        _fresh(ref_root)
        ref_times.append(timed(ref_cmd, reference_env(ref_root, threads=1)))
        _fresh(our_root)
        our_times.append(timed(ours_cmd(our_root, CONFIGS, 2), env_ours(our_root)))
    rows = []
    for i, ((rw, rc), (ow, oc)) in enumerate(zip(ref_times, our_times)):
        rows.append([f"run {i + 1}", f"{rw:.2f} / {rc:.2f}", f"{ow:.2f} / {oc:.2f}", f"{ow / rw:.2f} / {oc / rc:.2f}"])
    rw, ow = statistics.median(t[0] for t in ref_times), statistics.median(t[0] for t in our_times)
    rc, oc = statistics.median(t[1] for t in ref_times), statistics.median(t[1] for t in our_times)
    rows.append(["median", f"{rw:.2f} / {rc:.2f}", f"{ow:.2f} / {oc:.2f}", f"{ow / rw:.2f} / {oc / rc:.2f}"])
    checks = []
    for config in CONFIGS:
        diff, seg_diff, n = compare_outputs(ref_root, our_root, NAME, config)
        checks.append([config, str(n), f"{diff:.2g}", str(seg_diff)])
    return rows, checks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=208)
    parser.add_argument("--tasks", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--datasets", type=Path, default=REPO.parent / "shared" / "datasets")
    parser.add_argument("--skip-reference", action="store_true", help="sections 1 and 2 only")
    args = parser.parse_args()
    print(f"load average before: {load()}  ({os.cpu_count()} CPUs)")
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cases = hippocampus_cases(args.datasets, args.cases)
        make_raw(root / "ref" / "raw", NAME, "MRI", {"background": 0, "anterior": 1, "posterior": 2}, cases)
        run_reference(["nnUNetv2_plan_and_preprocess", "-d", "4", "--no_pp", "-npfp", "2"], root / "ref", threads=1)
        prepare_ours(root / "ref", root / "ours", NAME)
        print(f"\n1. Per-case throughput: autounet preprocess, 3d_fullres, {len(cases)} Hippocampus cases "
              "(whole command)\n")
        print_table(["workers", "wall s", "CPU s", "cases/s", "CPU ms/case"], throughput(root / "ours", len(cases)))
        print(f"\n2. Scheduling overhead: {args.tasks} no-op tasks\n")
        print_table(["executor", "set-up s", "wall s", "ms/task"], scheduling(args.tasks))
        if not args.skip_reference:
            print(f"\n3. Preprocessing 3d_fullres + 2d, {len(cases)} cases, 2 workers each, side by side: "
                  "wall / CPU seconds\n")
            rows, checks = versus_reference(root / "ref", root / "ours", args.repeats)
            print_table(["", "reference", "autounet", "autounet / reference"], rows)
            print()
            print_table(["configuration", "cases", "max abs data diff", "label voxels differing"], checks)
    print(f"\nload average after: {load()}")


if __name__ == "__main__":
    main()
