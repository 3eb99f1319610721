"""Make the network/loss/sliding-window golden files with the reference (nnunetv2 2.8.1, dynamic-network-architectures).

Run from the repository root with the project venv::

    nice -n 10 .venv/bin/python benchmarks/golden/make_networks.py

The reference runs in its own venv (``benchmarks/reference.py``); nothing of it is imported here. Writes to
``tests/data/golden/networks/``:

* ``param_counts.json``: for every topology, our ``NetworkSpec`` dict, the reference ``arch_kwargs`` it maps to,
  in/out channels and the reference network's parameter count (``sum(p.numel() for p in net.parameters())``).
  Topologies: the facts §6.5 table (plain and ResEnc, 3D 4/6/7 stages, 2D 8 stages), an anisotropic ACDC-like
  plan, other channel counts, and every configuration of the reference plans committed in
  ``tests/data/golden/planning`` (Hippocampus default and ResEnc M/L/XL, synthetic CT/MRI/2D datasets).
* ``forward.npz``: three tiny networks (plain 3D, ResEnc 3D, plain 2D; ``torch.manual_seed(0)``, built with the
  reference's own ``get_network_from_plans`` and initialisation, norm affines perturbed so that no path is
  zeroed). For each: every reference state-dict key (``state_keys``, aliases included), the tensors of the
  non-alias keys (``state/<key>``), an input, and the deep-supervision outputs in train mode.
* ``losses.npz``: reference ``DC_and_CE_loss`` / ``DC_and_BCE_loss`` (as ``nnUNetTrainer._build_loss`` configures
  them, ``ddp=False``), wrapped in ``DeepSupervisionWrapper`` with the trainer's weights, on seeded random logits
  and targets (with/without batch Dice, ignore label, regions): loss values and logit gradients.
* ``sliding_window.json``: ``compute_steps_for_sliding_window`` for a grid of image/patch sizes and step 0.5,
  and ``compute_gaussian(..., value_scaling_factor=10, dtype=float16)`` summary values for some patch sizes.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))
from reference import run_reference_python  # noqa: E402

OUT = REPO / "tests" / "data" / "golden" / "networks"
PLANNING = REPO / "tests" / "data" / "golden" / "planning"

REF_CLASS = {"plain_unet": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
             "resenc_unet": "dynamic_network_architectures.architectures.unet.ResidualEncoderUNet"}
NAME_OF_CLASS = {v.rsplit(".", 1)[1]: k for k, v in REF_CLASS.items()}


def spec_dict(name: str, feats: list[int], kernels: list[list[int]], strides: list[list[int]],
              blocks: list[int], dec: list[int]) -> dict[str, Any]:
    return {"name": name, "features_per_stage": feats, "kernel_sizes": kernels, "strides": strides,
            "blocks_per_stage": blocks, "convs_per_stage_decoder": dec, "conv_bias": True, "norm": "instance",
            "nonlin": "leaky_relu"}


def iso(name: str, feats: list[int], ndim: int, *, resenc: bool = False) -> dict[str, Any]:
    n = len(feats)
    blocks = [1, 3, 4, 6, 6, 6, 6, 6][:n] if resenc else [2] * n
    return spec_dict(name, feats, [[3] * ndim] * n, [[1] * ndim] + [[2] * ndim] * (n - 1), blocks,
                     [1 if resenc else 2] * (n - 1))


def arch_of(spec: dict[str, Any]) -> dict[str, Any]:
    """Our NetworkSpec dict → the reference's ``architecture`` dict."""
    ndim = len(spec["kernel_sizes"][0])
    blocks_key = "n_conv_per_stage" if spec["name"] == "plain_unet" else "n_blocks_per_stage"
    return {
        "network_class_name": REF_CLASS[spec["name"]],
        "arch_kwargs": {
            "n_stages": len(spec["features_per_stage"]), "features_per_stage": spec["features_per_stage"],
            "conv_op": f"torch.nn.modules.conv.Conv{ndim}d", "kernel_sizes": spec["kernel_sizes"],
            "strides": spec["strides"], blocks_key: spec["blocks_per_stage"],
            "n_conv_per_stage_decoder": spec["convs_per_stage_decoder"], "conv_bias": True,
            "norm_op": f"torch.nn.modules.instancenorm.InstanceNorm{ndim}d",
            "norm_op_kwargs": {"eps": 1e-05, "affine": True}, "dropout_op": None, "dropout_op_kwargs": None,
            "nonlin": "torch.nn.LeakyReLU", "nonlin_kwargs": {"inplace": True}},
        "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
    }


def spec_of(arch: dict[str, Any]) -> dict[str, Any]:
    """The reference's ``architecture`` dict → our NetworkSpec dict."""
    kw = arch["arch_kwargs"]
    name = NAME_OF_CLASS[arch["network_class_name"].rsplit(".", 1)[1]]
    blocks = kw["n_conv_per_stage"] if name == "plain_unet" else kw["n_blocks_per_stage"]
    return spec_dict(name, kw["features_per_stage"], kw["kernel_sizes"], kw["strides"], blocks,
                     kw["n_conv_per_stage_decoder"])


def topologies() -> list[dict[str, Any]]:
    """Every topology whose parameter count is recorded."""
    out = []
    for label, feats, ndim in (("3d_4stages_hippocampus", [32, 64, 128, 256], 3),
                               ("3d_6stages", [32, 64, 128, 256, 320, 320], 3),
                               ("3d_7stages", [32, 64, 128, 256, 320, 320, 320], 3),
                               ("2d_8stages", [32, 64, 128, 256, 512, 512, 512, 512], 2)):
        for resenc in (False, True):
            spec = iso("resenc_unet" if resenc else "plain_unet", feats, ndim, resenc=resenc)
            out.append({"id": f"facts_{'resenc' if resenc else 'plain'}_{label}", "spec": spec,
                        "in_channels": 1, "num_outputs": 3})
    aniso_k = [[1, 3, 3]] + [[3, 3, 3]] * 5
    aniso_s = [[1, 1, 1], [1, 2, 2], [2, 2, 2], [2, 2, 2], [1, 2, 2], [1, 2, 2]]
    feats6 = [32, 64, 128, 256, 320, 320]
    out.append({"id": "acdc_like_plain", "in_channels": 1, "num_outputs": 4,
                "spec": spec_dict("plain_unet", feats6, aniso_k, aniso_s, [2] * 6, [2] * 5)})
    out.append({"id": "acdc_like_resenc", "in_channels": 1, "num_outputs": 4,
                "spec": spec_dict("resenc_unet", feats6, aniso_k, aniso_s, [1, 3, 4, 6, 6, 6], [1] * 5)})
    out.append({"id": "plain_3d_4ch_in_5_out", "in_channels": 4, "num_outputs": 5,
                "spec": iso("plain_unet", [32, 64, 128, 256, 320], 3)})
    out.extend(planning_topologies())
    return out


def planning_topologies() -> list[dict[str, Any]]:
    """Every configuration with an architecture in the committed reference plans (planning goldens)."""
    out = []
    for plans_file in sorted(PLANNING.glob("Dataset*/*.json")):
        if plans_file.name in ("dataset.json", "dataset_fingerprint.json"):
            continue
        plans = json.loads(plans_file.read_text(encoding="utf-8"))
        ds = json.loads((plans_file.parent / "dataset.json").read_text(encoding="utf-8"))
        in_ch = len(ds.get("channel_names", ds.get("modality", {"0": ""})))
        labels = ds["labels"]
        n_out = len(labels) - (1 if "ignore" in labels else 0)
        if any(isinstance(v, list) for v in labels.values()):
            n_out = sum(1 for k, v in labels.items() if k not in ("background", "ignore"))
        for cfg_name, cfg in plans["configurations"].items():
            if "architecture" not in cfg:
                continue
            out.append({"id": f"{plans_file.parent.name}/{plans_file.stem}/{cfg_name}", "in_channels": in_ch,
                        "num_outputs": n_out, "spec": spec_of(cfg["architecture"])})
    return out


COUNT_CODE = r"""
import json, torch
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
items = json.loads(open(ITEMS).read())
res = {}
for it in items:
    a = it["arch"]
    net = get_network_from_plans(a["network_class_name"], a["arch_kwargs"], a["_kw_requires_import"],
                                 it["in_channels"], it["num_outputs"], allow_init=False, deep_supervision=True)
    res[it["id"]] = sum(p.numel() for p in net.parameters())
print(json.dumps(res))
"""

FORWARD_CODE = r"""
import json, numpy as np, torch
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
items = json.loads(open(ITEMS).read())
arrays = {}
for it in items:
    torch.manual_seed(0)
    a = it["arch"]
    net = get_network_from_plans(a["network_class_name"], a["arch_kwargs"], a["_kw_requires_import"],
                                 it["in_channels"], it["num_outputs"], allow_init=True, deep_supervision=True)
    g = torch.Generator().manual_seed(1)
    # perturb the norms so that zero-initialised ResEnc norms do not hide the residual paths
    with torch.no_grad():
        for name, p in net.named_parameters():
            if ".norm." in name:
                p.add_(0.1 * torch.randn(p.shape, generator=g))
    x = torch.randn((2, it["in_channels"], *it["shape"]), generator=g)
    net.train()
    outs = net(x)
    k = it["id"]
    keys = list(net.state_dict().keys())
    arrays[f"{k}/state_keys"] = np.array(keys)
    for name, v in net.state_dict().items():
        # aliases (all_modules.*, decoder.encoder.*) hold the same tensors; store each tensor once
        if ".all_modules." not in name and not name.startswith("decoder.encoder."):
            arrays[f"{k}/state/{name}"] = v.numpy()
    arrays[f"{k}/input"] = x.numpy()
    for i, o in enumerate(outs):
        arrays[f"{k}/output{i}"] = o.detach().numpy()
np.savez_compressed(OUTFILE, **arrays)
print("ok")
"""

LOSS_CODE = r"""
import json, numpy as np, torch
from nnunetv2.training.loss.compound_losses import DC_and_CE_loss, DC_and_BCE_loss
from nnunetv2.training.loss.deep_supervision import DeepSupervisionWrapper
from nnunetv2.training.loss.dice import MemoryEfficientSoftDiceLoss
cases = json.loads(open(ITEMS).read())
arrays = {}
for c in cases:
    g = torch.Generator().manual_seed(c["seed"])
    shapes = c["shapes"]
    n_out = c["num_outputs"]
    ignore = c["ignore_label"]
    logits, targets = [], []
    for s in shapes:
        logits.append((2 * torch.randn((c["batch"], n_out, *s), generator=g)).requires_grad_(True))
        if c["regions"]:
            t = (torch.rand((c["batch"], n_out + (1 if ignore is not None else 0), *s), generator=g) < 0.4)
            targets.append(t)
        else:
            hi = n_out + (1 if ignore is not None else 0)
            targets.append(torch.randint(0, hi, (c["batch"], 1, *s), generator=g).float())
    if c["regions"]:
        loss = DC_and_BCE_loss({}, {"batch_dice": c["batch_dice"], "do_bg": True, "smooth": 1e-5, "ddp": False},
                               use_ignore_label=ignore is not None, dice_class=MemoryEfficientSoftDiceLoss)
    else:
        loss = DC_and_CE_loss({"batch_dice": c["batch_dice"], "smooth": 1e-5, "do_bg": False, "ddp": False}, {},
                              weight_ce=1, weight_dice=1, ignore_label=ignore, dice_class=MemoryEfficientSoftDiceLoss)
    weights = np.array([1 / (2 ** i) for i in range(len(shapes))])
    weights[-1] = 0
    weights = weights / weights.sum()
    wrapped = DeepSupervisionWrapper(loss, weights)
    value = wrapped(logits, targets)
    value.backward()
    k = c["id"]
    arrays[f"{k}/loss"] = np.array(value.item())
    arrays[f"{k}/weights"] = weights
    for i, (l, t) in enumerate(zip(logits, targets)):
        arrays[f"{k}/logits{i}"] = l.detach().numpy()
        arrays[f"{k}/target{i}"] = t.numpy().astype(np.int8)
        arrays[f"{k}/grad{i}"] = (l.grad if l.grad is not None else torch.zeros_like(l)).numpy()
    single = loss(logits[0].detach(), targets[0])
    arrays[f"{k}/loss_single"] = np.array(single.item())
np.savez_compressed(OUTFILE, **arrays)
print("ok")
"""

SLIDING_CODE = r"""
import json, torch
from nnunetv2.inference.sliding_window_prediction import compute_steps_for_sliding_window, compute_gaussian
steps = {}
for image in range(16, 200, 7):
    for patch in (16, 40, 56, 64, 96, 128):
        if image >= patch:
            steps[f"{image}/{patch}"] = compute_steps_for_sliding_window((image,), (patch,), 0.5)[0]
gauss = {}
for patch in ([40, 56, 40], [56, 40], [128, 128, 128], [20, 256, 224], [9, 12, 7]):
    g = compute_gaussian(tuple(patch), sigma_scale=1. / 8, value_scaling_factor=10, dtype=torch.float16,
                         device=torch.device("cpu")).float()
    c = tuple(p // 2 for p in patch)
    gauss["x".join(map(str, patch))] = {
        "max": g.max().item(), "min": g.min().item(), "sum": g.double().sum().item(),
        "center": g[c].item(), "corner": g[(0,) * len(patch)].item(),
        "axis0_profile": g[(slice(None), *c[1:])].tolist(),
    }
print(json.dumps({"steps": steps, "gaussian": gauss}))
"""


def run(code: str, root: Path, **subs: str) -> str:
    for k, v in subs.items():
        code = code.replace(k, repr(v))
    return run_reference_python(code, root, threads=1)


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        items = topologies()
        for it in items:
            it["arch"] = arch_of(it["spec"])
        (root / "items.json").write_text(json.dumps(items))
        counts = json.loads(run(COUNT_CODE, root, ITEMS=str(root / "items.json")))
        for it in items:
            it["parameters"] = counts[it["id"]]
        body = ",\n".join(" " + json.dumps(it) for it in items)  # one network per line
        ref = json.dumps("nnunetv2 2.8.1 / dynamic-network-architectures 0.4.4")
        (OUT / "param_counts.json").write_text(f'{{"reference": {ref}, "networks": [\n{body}\n]}}\n')

        tiny = [
            {"id": "plain3d", "in_channels": 2, "num_outputs": 3, "shape": [8, 12, 8],
             "spec": spec_dict("plain_unet", [4, 8, 16], [[1, 3, 3], [3, 3, 3], [3, 3, 3]],
                               [[1, 1, 1], [1, 2, 2], [2, 2, 2]], [2, 2, 2], [2, 2])},
            {"id": "resenc3d", "in_channels": 1, "num_outputs": 2, "shape": [8, 8, 8],
             "spec": spec_dict("resenc_unet", [4, 8, 16], [[3, 3, 3]] * 3, [[1, 1, 1], [2, 2, 2], [2, 2, 2]],
                               [1, 2, 2], [1, 1])},
            {"id": "plain2d", "in_channels": 1, "num_outputs": 4, "shape": [16, 12],
             "spec": spec_dict("plain_unet", [4, 8, 8, 16], [[3, 3]] * 4, [[1, 1], [2, 2], [2, 2], [2, 1]],
                               [2, 2, 2, 2], [1, 1, 1])},
        ]
        for it in tiny:
            it["arch"] = arch_of(it["spec"])
        (root / "tiny.json").write_text(json.dumps(tiny))
        run(FORWARD_CODE, root, ITEMS=str(root / "tiny.json"), OUTFILE=str(OUT / "forward.npz"))
        (OUT / "forward.json").write_text(json.dumps(tiny, indent=1))

        loss_cases = [
            {"id": "ce_dice", "seed": 0, "batch": 2, "num_outputs": 3, "shapes": [[6, 8, 4], [3, 4, 2], [2, 2, 1]],
             "batch_dice": False, "ignore_label": None, "regions": False},
            {"id": "ce_dice_batch", "seed": 1, "batch": 3, "num_outputs": 4, "shapes": [[6, 8, 4], [3, 4, 2]],
             "batch_dice": True, "ignore_label": None, "regions": False},
            {"id": "ce_dice_ignore", "seed": 2, "batch": 2, "num_outputs": 3, "shapes": [[8, 6], [4, 3], [2, 2]],
             "batch_dice": True, "ignore_label": 3, "regions": False},
            {"id": "bce_dice_regions", "seed": 3, "batch": 2, "num_outputs": 2, "shapes": [[6, 8, 4], [3, 4, 2]],
             "batch_dice": False, "ignore_label": None, "regions": True},
            {"id": "bce_dice_regions_ignore", "seed": 4, "batch": 2, "num_outputs": 3,
             "shapes": [[6, 8, 4], [3, 4, 2], [2, 2, 1]], "batch_dice": True, "ignore_label": 4, "regions": True},
        ]
        (root / "loss.json").write_text(json.dumps(loss_cases))
        run(LOSS_CODE, root, ITEMS=str(root / "loss.json"), OUTFILE=str(OUT / "losses.npz"))
        (OUT / "losses.json").write_text(json.dumps(loss_cases, indent=1))

        sliding = json.loads(run(SLIDING_CODE, root))
        (OUT / "sliding_window.json").write_text(json.dumps(sliding, indent=1))
    sizes = {p.name: p.stat().st_size for p in OUT.iterdir()}
    print(json.dumps(sizes, indent=1))
    assert np.all([s < 1_000_000 for s in sizes.values()])


if __name__ == "__main__":
    main()
