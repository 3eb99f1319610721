"""Benchmark: dataset verification and lossless image I/O on Hippocampus (208 cases), autounet vs the reference.

* import: ``autounet import`` of ../shared/datasets/Hippocampus (208 pairs, 3 unpaired) with ``--link``.
* verify: ``autounet verify 4 -j N`` vs the reference's ``verify_dataset_integrity(folder, N)`` (what
  ``nnUNetv2_plan_and_preprocess --verify_dataset_integrity`` runs), both as fresh processes on the same data;
  wall seconds of the whole process (median of ``--repeats``) and of the check itself (timed inside the process).
* CPU seconds (user + system, all processes of the command) of the whole verify process, less sensitive to
  other load on the machine than wall time.
* round trip: every image and label read and written back with autounet's I/O; arrays, spacing, origin and
  direction must be identical.

Usage: ``nice -n 10 .venv/bin/python benchmarks/io_bench.py [--workers 2] [--repeats 3] [--no-reference]``.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from reference import reference_env, reference_python  # noqa: E402

HIPPOCAMPUS = REPO.parent / "shared" / "datasets" / "Hippocampus"
NAME = "Dataset004_Hippocampus"
AUTOUNET = str(REPO / ".venv" / "bin" / "autounet")
OURS_INNER = ("import sys, time; from autounet.dataset import verify; t = time.perf_counter(); "
              "r = verify(sys.argv[1], workers=int(sys.argv[2])); "
              "print(time.perf_counter() - t, r.ok, r.n_cases)")
REF_INNER = ("import sys, time; from nnunetv2.experiment_planning.verify_dataset_integrity import "
             "verify_dataset_integrity; t = time.perf_counter(); verify_dataset_integrity(sys.argv[1], "
             "int(sys.argv[2])); print(time.perf_counter() - t)")


CPU: dict[str, list[float]] = {"ours": [], "ref": []}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(cmd: list[str], *, cpu_key: str | None = None, **kw: object) -> tuple[float, str]:
    """Wall seconds and stdout of a command; its CPU seconds (all its processes) go to ``CPU[cpu_key]``."""
    start, cpu = time.perf_counter(), _children_cpu()
    proc = subprocess.run(cmd, check=True, text=True, encoding="utf-8", errors="replace", capture_output=True, **kw)  # type: ignore[call-overload]
    if cpu_key is not None:
        CPU[cpu_key].append(_children_cpu() - cpu)
    return time.perf_counter() - start, proc.stdout


def import_dataset(ws: Path) -> float:
    seconds, out = timed([AUTOUNET, "import", "--workspace", str(ws), "--images", str(HIPPOCAMPUS / "images"),
                          "--labels", str(HIPPOCAMPUS / "labels"), "--id", "4", "--name", "Hippocampus",
                          "--channel", "MRI", "--label", "background=0", "--label", "Anterior=1",
                          "--label", "Posterior=2", "--link"])
    assert "imported 208 cases" in out, out
    return seconds


def bench_verify(ws: Path, workers: int, repeats: int, reference: bool) -> dict[str, list[float]]:
    folder = str(ws / "raw" / NAME)
    out: dict[str, list[float]] = {"ours_process": [], "ours_inner": [], "ref_process": [], "ref_inner": []}
    for _ in range(repeats):
        seconds, _ = timed([AUTOUNET, "verify", "--workspace", str(ws), "4", "-j", str(workers), "--no-progress"],
                           cpu_key="ours")
        out["ours_process"].append(seconds)
        _, text = timed([sys.executable, "-c", OURS_INNER, folder, str(workers)])
        inner, ok, n = text.split()
        assert ok == "True" and n == "208", text
        out["ours_inner"].append(float(inner))
        if reference:
            env = reference_env(ws / "ref")
            seconds, text = timed([str(reference_python()), "-c", REF_INNER, folder, str(workers)], env=env,
                                  cpu_key="ref")
            out["ref_process"].append(seconds)
            out["ref_inner"].append(float(text.strip().splitlines()[-1]))
    return out


def round_trip(ws: Path) -> tuple[int, int, float]:
    """(cases lossless, cases, seconds) for reading and writing back every image and label."""
    from autounet.dataset import open_raw_dataset
    from autounet.io import get_reader, read_segmentation, write_image, write_segmentation

    ds = open_raw_dataset(ws / "raw" / NAME)
    reader = get_reader(ds.reader_name())
    tmp = Path(tempfile.mkdtemp(dir=ws))
    ok, start = 0, time.perf_counter()
    for case, files in ds.cases.items():
        img, geom = reader.read_one(files.images[0], segmentation=False)  # native dtype
        seg, sgeom = read_segmentation(files.label)
        write_image(img, tmp / f"{case}_0000.nii.gz", geom)
        write_segmentation(seg, tmp / f"{case}.nii.gz", sgeom)
        img2, geom2 = reader.read_one(tmp / f"{case}_0000.nii.gz", segmentation=False)
        seg2, sgeom2 = read_segmentation(tmp / f"{case}.nii.gz")
        same = (img2.dtype == img.dtype and np.array_equal(img2, img) and np.array_equal(seg2, seg)
                and geom2 == geom and sgeom2 == sgeom)
        ok += bool(same)
    return ok, len(ds.cases), time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-reference", dest="reference", action="store_false")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        ws = Path(tmp) / "ws"
        t_import = import_dataset(ws)
        times = bench_verify(ws, args.workers, args.repeats, args.reference)
        ok, n, t_rt = round_trip(ws)
    med = {k: statistics.median(v) if v else float("nan") for k, v in times.items()}
    print(f"Hippocampus, 208 cases, {args.workers} worker(s), median of {args.repeats}")
    print(f"{'step':<34}{'autounet s':>12}{'reference s':>13}{'ratio':>8}")
    print(f"{'import (--link), whole process':<34}{t_import:>12.2f}{'-':>13}{'-':>8}")
    for label, ours, ref in (("verify, whole process", "ours_process", "ref_process"),
                             ("verify, check only (in process)", "ours_inner", "ref_inner")):
        ratio = med[ours] / med[ref] if args.reference else float("nan")
        print(f"{label:<34}{med[ours]:>12.2f}{med[ref]:>13.2f}{ratio:>8.2f}")
    if args.reference:
        ours, ref = statistics.median(CPU["ours"]), statistics.median(CPU["ref"])
        print(f"{'verify, CPU s of all processes':<34}{ours:>12.2f}{ref:>13.2f}{ours / ref:>8.2f}")
    print(f"{'read+write+reread round trip':<34}{t_rt:>12.2f}{'-':>13}{'-':>8}")
    print(f"lossless round trip (array, dtype, spacing, origin, direction): {ok}/{n} cases")


if __name__ == "__main__":
    main()
