"""Time one training iteration (forward, Dice+CE deep-supervision loss, backward, clip, SGD step): ours vs reference.

Usage (repository root, project venv)::

    nice -n 10 .venv/bin/python benchmarks/network_bench.py [--plans PATH] [--config 3d_fullres]
        [--batch-size N] [--iters 3] [--rounds 2] [--threads N] [--variants ref,ours,ours_cl,ours_compile]

The plans default to the reference's own Hippocampus plans committed with the planning goldens
(``tests/data/golden/planning/Dataset004_Hippocampus/nnUNetPlans.json``; 3d_fullres: 4 stages, features
32..256, patch 40×56×40, batch 7). Every variant runs in its own subprocess with the same thread count, one
warm-up iteration (which includes compilation for ``ours_compile``) and ``--iters`` timed iterations; variants are
interleaved ``--rounds`` times so that both sides see the same machine load. The reference runs in its venv
(``benchmarks/reference.py``): its ``get_network_from_plans`` network and its ``DC_and_CE_loss`` wrapped in
``DeepSupervisionWrapper`` as ``nnUNetTrainer`` builds them. Inputs: ``N(0, 1)`` images, random labels 0..2,
deep-supervision targets by strided subsampling. Prints a table (median and best seconds per iteration, ratio of
medians to the reference).

Variants: ``ref`` (reference), ``ours`` (contiguous memory format), ``ours_cl`` (channels-last weights and
activations, fused norm), ``ours_compile`` (``torch.compile``, inductor, contiguous).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "benchmarks"))
from reference import reference_env, reference_python  # noqa: E402

DEFAULT_PLANS = REPO / "tests" / "data" / "golden" / "planning" / "Dataset004_Hippocampus" / "nnUNetPlans.json"

# Shared by both workers: a JSON config on argv[1]; prints one JSON line with per-iteration seconds.
COMMON = r"""
import json, sys, time
import numpy as np
import torch
cfg = json.loads(open(sys.argv[1]).read())
torch.set_num_threads(cfg["threads"])
torch.manual_seed(0)
B, patch, n_out = cfg["batch_size"], cfg["patch_size"], cfg["num_outputs"]
strides = cfg["strides"]
x = torch.randn(B, 1, *patch)
y = torch.randint(0, n_out, (B, 1, *patch)).float()
targets, cum = [], [1] * len(patch)
for s in strides[:-1]:
    cum = [c * int(v) for c, v in zip(cum, s)]
    targets.append(y[(slice(None), slice(None), *[slice(None, None, c) for c in cum])].contiguous())

def run(net, loss, x_prep=lambda t: t):
    opt = torch.optim.SGD(net.parameters(), lr=1e-2, momentum=0.99, nesterov=True, weight_decay=3e-5)
    def step():
        opt.zero_grad(set_to_none=True)
        out = net(x_prep(x))
        l = loss(out, targets)
        l.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 12)
        opt.step()
        return l.item()
    t0 = time.perf_counter(); step(); warm = time.perf_counter() - t0
    times = []
    for _ in range(cfg["iters"]):
        t0 = time.perf_counter(); step(); times.append(time.perf_counter() - t0)
    print(json.dumps({"warmup": warm, "times": times}))
"""

OURS = COMMON + r"""
from autounet import networks
from autounet.schemas.plans import NetworkSpec
from autounet.training.losses import build_loss
class L:
    has_regions = False
    ignore_label = None
spec = NetworkSpec.from_dict(cfg["spec"], where="bench")
variant = cfg["variant"]
net = networks.build(spec, in_channels=1, num_outputs=n_out, channels_last=variant == "ours_cl")
loss = build_loss(L(), batch_dice=cfg["batch_dice"], deep_supervision_scales=targets)
model = torch.compile(net) if variant == "ours_compile" else net
run(model, loss)
"""

REF = COMMON + r"""
import warnings
warnings.simplefilter("ignore")
import numpy as np
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
from nnunetv2.training.loss.compound_losses import DC_and_CE_loss
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss
a = cfg["arch"]
net = get_network_from_plans(a["network_class_name"], a["arch_kwargs"], a["_kw_requires_import"], 1, n_out,
                             allow_init=True, deep_supervision=True)
loss = DC_and_CE_loss({"batch_dice": cfg["batch_dice"], "smooth": 1e-5, "do_bg": False, "ddp": False}, {},
                      weight_ce=1, weight_dice=1, ignore_label=None, dice_class=MemoryEfficientSoftDiceLoss)
w = np.array([1 / (2 ** i) for i in range(len(targets))]); w[-1] = 0; w = w / w.sum()
run(net, DeepSupervisionWrapper(loss, w))
"""


def load_config(plans_path: Path, config: str) -> dict[str, Any]:
    """Batch, patch, strides, batch_dice, reference arch and our NetworkSpec dict from a reference plans file."""
    plans = json.loads(plans_path.read_text(encoding="utf-8"))
    cfg = plans["configurations"][config]
    arch = cfg["architecture"]
    kw = arch["arch_kwargs"]
    plain = arch["network_class_name"].endswith("PlainConvUNet")
    spec = {"name": "plain_unet" if plain else "resenc_unet", "features_per_stage": kw["features_per_stage"],
            "kernel_sizes": kw["kernel_sizes"], "strides": kw["strides"],
            "blocks_per_stage": kw["n_conv_per_stage"] if plain else kw["n_blocks_per_stage"],
            "convs_per_stage_decoder": kw["n_conv_per_stage_decoder"]}
    return {"batch_size": cfg["batch_size"], "patch_size": cfg["patch_size"], "strides": kw["strides"],
            "batch_dice": cfg["batch_dice"], "arch": arch, "spec": spec, "num_outputs": 3}


def run_variant(variant: str, cfg: dict[str, Any], tmp: Path) -> dict[str, Any]:
    """One subprocess run of ``variant``; returns its warm-up and per-iteration times."""
    path = tmp / f"{variant}.json"
    path.write_text(json.dumps({**cfg, "variant": variant}))
    if variant == "ref":
        cmd = [str(reference_python()), "-c", REF, str(path)]
        env = reference_env(tmp / "refroot", threads=cfg["threads"])
    else:
        cmd = [sys.executable, "-c", OURS, str(path)]
        env = {**os.environ, "OMP_NUM_THREADS": str(cfg["threads"]), "MKL_NUM_THREADS": str(cfg["threads"])}
    proc = subprocess.run(cmd, env=env, check=True, text=True, encoding="utf-8", errors="replace", capture_output=True)
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--plans", type=Path, default=DEFAULT_PLANS)
    ap.add_argument("--config", default="3d_fullres")
    ap.add_argument("--batch-size", type=int, default=None)
    ap.add_argument("--iters", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--variants", default="ref,ours,ours_cl,ours_compile")
    args = ap.parse_args()
    cfg = load_config(args.plans, args.config)
    if args.batch_size:
        cfg["batch_size"] = args.batch_size
    cfg.update(iters=args.iters, threads=args.threads)
    variants = args.variants.split(",")
    results: dict[str, list[float]] = {v: [] for v in variants}
    warmups: dict[str, list[float]] = {v: [] for v in variants}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            for v in variants:
                res = run_variant(v, cfg, Path(tmp))
                results[v].extend(res["times"])
                warmups[v].append(res["warmup"])
                print(f"# round {r} {v}: warm-up {res['warmup']:.1f} s, iterations "
                      f"{', '.join(f'{t:.1f}' for t in res['times'])} s", flush=True)
    ref_median = statistics.median(results["ref"]) if "ref" in results else None
    print(f"\nplans {args.plans.name} [{args.config}]: batch {cfg['batch_size']}, patch {cfg['patch_size']}, "
          f"{len(cfg['strides'])} stages, threads {args.threads}, {args.rounds} rounds x {args.iters} iterations")
    print(f"{'variant':<14}{'median s/it':>12}{'best s/it':>11}{'warm-up s':>11}{'vs ref':>9}")
    for v in variants:
        med = statistics.median(results[v])
        ratio = f"{med / ref_median:.2f}x" if ref_median else "-"
        print(f"{v:<14}{med:>12.2f}{min(results[v]):>11.2f}{statistics.median(warmups[v]):>11.1f}{ratio:>9}")


if __name__ == "__main__":
    main()
