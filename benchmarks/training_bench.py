"""Training-iteration benchmark: autounet vs the reference trainer on the same plans and the same preprocessed data.

What it measures (Hippocampus 3d_fullres, the reference's plans: batch 7, patch 40×56×40, 4-stage plain U-Net):

* reference: ``nnUNetTrainer`` (nnunetv2 2.8.1, its own venv) on CPU with ``nnUNet_n_proc_DA`` augmentation
  workers; per iteration the time blocked in ``next(dataloader_train)`` and the time of ``train_step``.
* autounet: :func:`autounet.training.build.build_run` on the same plans (imported with
  ``autounet.planning.reference.import_plans``) reading the same reference ``.b2nd`` files; per iteration the time
  blocked waiting for the loader threads, the on-device augmentation and the training step.

Both sides use the same number of torch threads and loader workers, one after the other in one run.

Usage::

    nice -n 10 .venv/bin/python benchmarks/training_bench.py [--iters 6] [--threads 2] [--workers 2]

The first run plans and preprocesses Hippocampus with the reference into ``.bench_cache/training`` (a few
minutes); later runs reuse it.
"""

from __future__ import annotations

import argparse
import json
import pickle
import statistics
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference import reference_env, reference_python, run_reference  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CACHE = REPO / ".bench_cache" / "training"
RAW = REPO.parent / "shared" / "datasets" / "Hippocampus"
DATASET = "Dataset004_Hippocampus"

REFERENCE_CODE = r"""
import json, os, sys, time
import torch
from batchgenerators.utilities.file_and_folder_operations import load_json, join
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer
pre = join(os.environ["nnUNet_preprocessed"], "Dataset004_Hippocampus")
plans = load_json(join(pre, "nnUNetPlans.json")); plans["continue_training"] = False
ds = load_json(join(pre, "dataset.json"))
n_iter, threads, config, device = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3], torch.device(sys.argv[4])
torch.set_num_threads(threads)
tr = nnUNetTrainer(plans, config, 0, ds, device=device)
tr.on_train_start(); tr.on_train_epoch_start(); tr.network.train()
waits, steps = [], []
for i in range(n_iter + 1):
    t0 = time.perf_counter(); b = next(tr.dataloader_train); t1 = time.perf_counter()
    tr.train_step(b)
    if device.type == "cuda":
        torch.cuda.synchronize()
    t2 = time.perf_counter()
    if i:
        waits.append(t1 - t0); steps.append(t2 - t1)
print("RESULT" + json.dumps({"wait": waits, "step": steps, "batch": tr.batch_size}))
sys.stdout.flush()
for gen in (tr.dataloader_train, tr.dataloader_val):
    gen._finish()  # stop the augmentation workers: they would keep our stdout pipe open
os._exit(0)
"""


class ReferenceStore:
    """Reads the reference's preprocessed folder (``.b2nd`` arrays, ``.pkl`` properties) for the loader."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._props: dict[str, Any] = {}

    def case_ids(self) -> list[str]:
        return sorted(p.stem for p in self.folder.glob("*.pkl"))

    def properties(self, case: str) -> Any:
        if case not in self._props:
            with open(self.folder / f"{case}.pkl", "rb") as fh:
                self._props[case] = pickle.load(fh)
        return self._props[case]

    def open(self, case: str) -> tuple[Any, Any]:
        import blosc2

        return (blosc2.open(str(self.folder / f"{case}.b2nd"), mode="r", mmap_mode="r"),
                blosc2.open(str(self.folder / f"{case}_seg.b2nd"), mode="r", mmap_mode="r"))


def prepare_reference_data(config: str) -> Path:
    """Reference raw layout (symlinks to the shared Hippocampus pairs), plans and preprocessing (cached)."""
    raw = CACHE / "raw" / DATASET
    pre = CACHE / "preprocessed" / DATASET
    if not (pre / f"nnUNetPlans_{config}").is_dir():
        (raw / "imagesTr").mkdir(parents=True, exist_ok=True)
        (raw / "labelsTr").mkdir(parents=True, exist_ok=True)
        n = 0
        for label in sorted((RAW / "labels").glob("*.nii.gz")):
            image = RAW / "images" / label.name
            if not image.is_file():
                continue
            case = label.name[: -len(".nii.gz")]
            for src, dst in ((image, raw / "imagesTr" / f"{case}_0000.nii.gz"), (label, raw / "labelsTr" / label.name)):
                if not dst.exists():
                    dst.symlink_to(src)
            n += 1
        (raw / "dataset.json").write_text(json.dumps({
            "channel_names": {"0": "MRI"}, "labels": {"background": 0, "Anterior": 1, "Posterior": 2},
            "numTraining": n, "file_ending": ".nii.gz", "name": "Hippocampus"}))
        run_reference(["nnUNetv2_plan_and_preprocess", "-d", "4", "-c", config, "-np", "2"], CACHE, threads=1)
    return pre


def bench_reference(iters: int, threads: int, workers: int, config: str, device: str) -> dict[str, Any]:
    """Time the reference trainer's iterations in its own venv."""
    import subprocess

    env = reference_env(CACHE, threads=threads)
    env["nnUNet_n_proc_DA"] = str(workers)
    proc = subprocess.run([str(reference_python()), "-c", REFERENCE_CODE, str(iters), str(threads), config, device],
                          env=env, text=True, encoding="utf-8", errors="replace", capture_output=True, check=True)
    line = next(x for x in proc.stdout.splitlines() if x.startswith("RESULT"))
    return json.loads(line[len("RESULT"):])


def bench_ours(iters: int, threads: int, workers: int, config: str, device: str, *,
               channels_last: bool) -> dict[str, Any]:
    """Time autounet's iterations (loader wait, on-device augmentation, training step) on the same data."""
    import tempfile

    import torch

    from autounet.planning.reference import import_plans
    from autounet.schemas.plans import save_plans
    from autounet.schemas.training import training_config
    from autounet.training.build import build_run, load_inputs
    from autounet.training.ddp import DistContext
    from autounet.training.loop import train_step
    from autounet.workspace import Workspace

    torch.set_num_threads(threads)
    pre = CACHE / "preprocessed" / DATASET
    with tempfile.TemporaryDirectory() as tmp:
        ws = Workspace.at(tmp).ensure()
        target = ws.preprocessed_dataset(DATASET)
        target.mkdir(parents=True)
        save_plans(ws.plans_file(DATASET, "nnUNetPlans"), import_plans(json.loads((pre / "nnUNetPlans.json").read_text(encoding="utf-8"))))
        for name in ("dataset.json", "dataset_fingerprint.json", "splits_final.json"):
            if (pre / name).is_file():
                (target / name).write_text((pre / name).read_text(encoding="utf-8"))
        inputs = load_inputs(ws, DATASET, config, "nnUNetPlans", check_data=False)
        cfg = training_config(loader_threads=workers, device=device, seed=0, channels_last=channels_last,
                              val_iterations=0)
        torch_device = torch.device(device)
        run = build_run(ws, DATASET, inputs, 0, fold_dir=Path(tmp) / "fold_0", config=cfg,
                        device=torch_device, dist_ctx=DistContext(), seed=0,
                        store=ReferenceStore(pre / f"nnUNetPlans_{config}"))
        run.model.train()
        waits, augs, steps = [], [], []
        batches = run.train_loader.batches(0, 0, iters + 1)
        gen = torch.Generator(device=torch_device)
        for i in range(iters + 1):
            t0 = time.perf_counter()
            batch = next(batches)
            t1 = time.perf_counter()
            gen.manual_seed(i)
            inputs_, targets = run.augment(torch.from_numpy(batch.data).to(torch_device),
                                           torch.from_numpy(batch.seg).to(torch_device), gen)
            _sync(torch_device)
            t2 = time.perf_counter()
            train_step(run, inputs_, targets)
            _sync(torch_device)
            t3 = time.perf_counter()
            if i:
                waits.append(t1 - t0)
                augs.append(t2 - t1)
                steps.append(t3 - t2)
        batches.close()
        run.train_loader.close()
        return {"wait": waits, "augment": augs, "step": steps, "batch": run.train_loader.batch_size}


def _sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize()


def _row(name: str, r: dict[str, Any]) -> tuple[str, float, float, float, float]:
    wait = statistics.mean(r["wait"])
    aug = statistics.mean(r.get("augment", [0.0]))
    step = statistics.mean(r["step"])
    total = wait + aug + step
    return name, total, wait, aug, step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--iters", type=int, default=6)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--config", default="3d_fullres")
    parser.add_argument("--device", default="cpu", help="cpu or cuda (both trainers)")
    parser.add_argument("--skip-reference", action="store_true")
    args = parser.parse_args()
    prepare_reference_data(args.config)
    rows = []
    if not args.skip_reference:
        rows.append(_row("reference nnUNetTrainer", bench_reference(args.iters, args.threads, args.workers,
                                                                    args.config, args.device)))
    rows.append(_row("autounet", bench_ours(args.iters, args.threads, args.workers, args.config,
                                            args.device, channels_last=False)))
    rows.append(_row("autounet --channels-last", bench_ours(args.iters, args.threads, args.workers, args.config,
                                                            args.device, channels_last=True)))
    print(f"Hippocampus {args.config} on {args.device}, {args.iters} iterations after 1 warm-up, {args.threads} threads, "
          f"{args.workers} loader workers")
    print(f"| {'trainer':<26} | {'s / iteration':>13} | {'data wait':>9} | {'augment':>7} | {'step':>6} | "
          f"{'wait share':>10} |")
    print(f"|{'-' * 28}|{'-' * 15}|{'-' * 11}|{'-' * 9}|{'-' * 8}|{'-' * 12}|")
    for name, total, wait, aug, step in rows:
        print(f"| {name:<26} | {total:13.2f} | {wait:9.3f} | {aug:7.2f} | {step:6.2f} | {100 * wait / total:9.1f}% |")
    if not args.skip_reference:
        ref = rows[0][1]
        for name, total, *_ in rows[1:]:
            print(f"{name}: {ref / total:.2f}x the reference's iteration speed")


if __name__ == "__main__":
    main()
