"""Training data pipeline throughput: the reference (nnunetv2 2.8.1) against autounet, on the same CPU cores.

Both sides read the same data: Hippocampus converted to the reference's raw format and preprocessed by the
reference's ``nnUNetv2_plan_and_preprocess`` (2d and 3d_fullres) in ``.bench_cache/augmentation/``.

- reference: its trainer's own ``get_dataloaders()`` (``nnUNetDataLoader`` + ``get_training_transforms`` in
  ``NonDetMultiThreadedAugmenter`` worker processes, ``nnUNet_n_proc_DA=2``), batches taken with ``next()``.
- autounet: ``autounet.training.data.BatchLoader`` (2 reader threads, patches of the enlarged initial size) and
  ``autounet.augmentation.build(...)`` applied to the whole batch in the main process, on the CPU (the batch split
  in ``--aug-threads`` parts, 1 torch thread each) or on ``--device``.

Both wall-clock batches per second and CPU seconds per batch are reported (the reference's CPU time includes its
worker processes): on a shared machine the CPU time is the stable measure of the work done.

Usage::

    python benchmarks/augmentation_bench.py [--batches 60] [--device cpu|cuda] [--configs 3d_fullres 2d]

Prints a table of batches per second and the ratio.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference import REPO_ROOT, reference_env, run_reference  # noqa: E402

CACHE = REPO_ROOT / ".bench_cache" / "augmentation"
DATASET = "Dataset004_Hippocampus"
SOURCE = REPO_ROOT.parent / "shared" / "datasets" / "Hippocampus"


# ---- data preparation --------------------------------------------------------------------------------------------

def prepare(root: Path = CACHE) -> Path:
    """Raw Hippocampus in the reference's layout + its 2d/3d_fullres preprocessing (idempotent)."""
    pre = root / "preprocessed" / DATASET
    if (pre / "nnUNetPlans_3d_fullres").is_dir() and (pre / "nnUNetPlans_2d").is_dir() and (pre / ".done").exists():
        return pre
    raw = root / "raw" / DATASET
    (raw / "imagesTr").mkdir(parents=True, exist_ok=True)
    (raw / "labelsTr").mkdir(parents=True, exist_ok=True)
    cases = sorted(p.name[: -len(".nii.gz")] for p in (SOURCE / "images").glob("*.nii.gz")
                   if (SOURCE / "labels" / p.name).is_file())
    for case in cases:
        for src, dst in ((SOURCE / "images" / f"{case}.nii.gz", raw / "imagesTr" / f"{case}_0000.nii.gz"),
                         (SOURCE / "labels" / f"{case}.nii.gz", raw / "labelsTr" / f"{case}.nii.gz")):
            if not dst.exists():
                dst.symlink_to(src)
    (raw / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "MRI"}, "labels": {"background": 0, "Anterior": 1, "Posterior": 2},
        "numTraining": len(cases), "file_ending": ".nii.gz"}, indent=2))
    run_reference(["nnUNetv2_plan_and_preprocess", "-d", "4", "-c", "2d", "3d_fullres", "-np", "2"], root,
                  threads=2)
    (pre / ".done").touch()
    return pre


# ---- the reference side ------------------------------------------------------------------------------------------

REFERENCE_CODE = textwrap.dedent("""
    import json, os, sys, time, warnings
    warnings.filterwarnings("ignore")
    import torch
    from batchgenerators.utilities.file_and_folder_operations import load_json, join
    from nnunetv2.paths import nnUNet_preprocessed
    from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
    import contextlib, io
    cfg, n_batches, batch_size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    pre = join(nnUNet_preprocessed, "{dataset}")
    plans = load_json(join(pre, "nnUNetPlans.json"))
    plans["configurations"][cfg]["batch_size"] = batch_size
    plans["continue_training"] = False
    with contextlib.redirect_stdout(io.StringIO()):
        tr = nnUNetTrainer(plans, cfg, 0, load_json(join(pre, "dataset.json")), device=torch.device("cpu"))
        t0 = time.perf_counter()
        tr._set_batch_size_and_oversample()
        gen_tr, gen_val = tr.get_dataloaders()  # starts the workers and fetches one batch of each
        startup = time.perf_counter() - t0
    import multiprocessing
    def cpu_seconds():
        # CPU time of this process and its worker processes (Linux /proc, clock ticks)
        total = time.process_time()
        for child in multiprocessing.active_children():
            with open(f"/proc/{{child.pid}}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
        return total
    for _ in range(5):
        next(gen_tr)
    t0, c0 = time.perf_counter(), cpu_seconds()
    for _ in range(n_batches):
        b = next(gen_tr)
    dt, cpu = time.perf_counter() - t0, cpu_seconds() - c0
    for gen in (gen_tr, gen_val):
        gen._finish()  # stop the worker processes (they would keep our stdout open)
    print(json.dumps({{"batches_per_s": n_batches / dt, "startup_s": startup, "cpu_s_per_batch": cpu / n_batches,
                      "data": list(b["data"].shape), "target": [list(t.shape) for t in b["target"]]}}))
    sys.stdout.flush()
    os._exit(0)
""")


def run_reference_side(cfg: str, n_batches: int, batch_size: int) -> dict[str, Any]:
    code = REFERENCE_CODE.format(dataset=DATASET)
    import subprocess

    from reference import reference_python
    proc = subprocess.run([str(reference_python()), "-c", code, cfg, str(n_batches), str(batch_size)],
                          env=reference_env(CACHE, threads=2), check=False, text=True, encoding="utf-8", errors="replace", capture_output=True)
    if proc.returncode != 0:
        raise RuntimeError(f"reference run failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


# ---- the autounet side -------------------------------------------------------------------------------------------

class ReferenceFolderStore:
    """The reference's preprocessed folder (``<case>.b2nd``, ``<case>_seg.b2nd``, ``<case>.pkl``) as a patch store."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    def case_ids(self) -> list[str]:
        return sorted(p.name[: -len(".b2nd")] for p in self.folder.glob("*.b2nd") if not p.name.endswith("_seg.b2nd"))

    def properties(self, case: str) -> dict[str, Any]:
        with open(self.folder / f"{case}.pkl", "rb") as f:
            return pickle.load(f)

    def open(self, case: str) -> tuple[Any, Any]:
        import blosc2

        return (blosc2.open(str(self.folder / f"{case}.b2nd"), mode="r"),
                blosc2.open(str(self.folder / f"{case}_seg.b2nd"), mode="r"))


def run_autounet_side(cfg: str, n_batches: int, batch_size: int, *, device: str, threads: int = 1,
                      aug_threads: int = 2, loader_workers: int = 2) -> dict[str, Any]:
    import torch

    from autounet.augmentation import build
    from autounet.training.data import BatchLoader

    torch.set_num_threads(threads)
    pre = CACHE / "preprocessed" / DATASET
    plans = json.loads((pre / "nnUNetPlans.json").read_text(encoding="utf-8"))
    conf = plans["configurations"][cfg]
    strides = conf["architecture"]["arch_kwargs"]["strides"]
    aug = build("default", patch_size=conf["patch_size"], deep_supervision_strides=strides)
    store = ReferenceFolderStore(pre / conf["data_identifier"])
    loader = BatchLoader(store, store.case_ids(), batch_size=batch_size, patch_size=aug.initial_patch_size,
                         final_patch_size=aug.patch_size, oversample=0.33, seed=0, workers=loader_workers, prefetch=4,
                         pin_memory=device.startswith("cuda"))
    dev = torch.device(device)
    gen = torch.Generator().manual_seed(0)
    batches = loader.batches(0, 0, n_batches + 5)
    aug_seconds = 0.0
    try:
        t0 = c0 = None
        for i in range(n_batches + 5):
            if i == 5:
                t0, c0, aug_seconds = time.perf_counter(), time.process_time(), 0.0
            batch = next(batches)
            data = torch.as_tensor(batch.data).to(dev, non_blocking=True)
            seg = torch.as_tensor(batch.seg).to(dev, non_blocking=True)
            t1 = time.perf_counter()
            out = aug(data, seg, generator=gen, threads=aug_threads)
            if dev.type == "cuda":
                torch.cuda.synchronize()
            aug_seconds += time.perf_counter() - t1
        assert t0 is not None and c0 is not None
        dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    finally:
        batches.close()
        loader.close()
    return {"batches_per_s": n_batches / dt, "cpu_s_per_batch": cpu / n_batches, "augment_ms_per_batch": 1000 * aug_seconds / n_batches,
            "data": list(out.image.shape), "target": [list(t.shape) for t in out.target],
            "initial_patch": list(aug.initial_patch_size), "batch_size": batch_size}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batches", type=int, default=60, help="timed batches per side and configuration")
    parser.add_argument("--device", default="cpu", help="device for autounet's augmentation (cpu, cuda)")
    parser.add_argument("--configs", nargs="+", default=["3d_fullres", "2d"])
    parser.add_argument("--batch-3d", type=int, default=9, help="batch size of 3d_fullres (issue #5: 9)")
    parser.add_argument("--batch-2d", type=int, default=366, help="batch size of 2d (issue #5: 366)")
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads of autounet's process")
    parser.add_argument("--aug-threads", type=int, default=2,
                        help="parts of a CPU batch augmented concurrently (Augmenter threads=...)")
    parser.add_argument("--loader-workers", type=int, default=2, help="autounet's patch-reading threads")
    parser.add_argument("--skip-reference", action="store_true")
    args = parser.parse_args(argv)
    prepare()
    rows = []
    for cfg in args.configs:
        bs = args.batch_3d if cfg.startswith("3d") else args.batch_2d
        ref = None if args.skip_reference else run_reference_side(cfg, args.batches, bs)
        ours = run_autounet_side(cfg, args.batches, bs, device=args.device, threads=args.threads,
                                 aug_threads=args.aug_threads, loader_workers=args.loader_workers)
        rows.append((cfg, ref, ours))
    print(f"| configuration | patch (initial -> final) x batch | reference batches/s | autounet batches/s "
          f"({args.device}) | speed-up | reference CPU s/batch | autounet CPU s/batch | CPU ratio |"
          " autounet augmentation ms/batch |")
    print("|---|---|---|---|---|---|---|---|---|")
    for cfg, ref, ours in rows:
        def fmt(d: dict[str, Any] | None, key: str, spec: str) -> str:
            return format(d[key], spec) if d else "-"
        ratio = f"{ours['batches_per_s'] / ref['batches_per_s']:.2f}x" if ref else "-"
        cpu_ratio = f"{ref['cpu_s_per_batch'] / ours['cpu_s_per_batch']:.2f}x" if ref else "-"
        print(f"| {cfg} | {tuple(ours['initial_patch'])} -> {tuple(ours['data'][2:])} x {ours['batch_size']} | "
              f"{fmt(ref, 'batches_per_s', '.2f')} | {ours['batches_per_s']:.2f} | {ratio} | "
              f"{fmt(ref, 'cpu_s_per_batch', '.3f')} | {ours['cpu_s_per_batch']:.3f} | {cpu_ratio} | "
              f"{ours['augment_ms_per_batch']:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
