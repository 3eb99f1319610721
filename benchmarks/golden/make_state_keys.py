"""Make ``tests/data/golden/compat/state_keys.json``: the reference networks' state-dict key lists.

Run from the repository root with the project venv::

    PYTHONPATH=src .venv/bin/python benchmarks/golden/make_state_keys.py

For a few small topologies (plain and ResEnc, 2D and 3D, instance and batch norm, ResEnc skips with and without
pooling) it converts our ``NetworkSpec`` dict to the reference's ``architecture`` with
``autounet.planning.reference.export_network``, builds the network in the reference venv
(``get_network_from_plans``, deep supervision on, as the reference's trainer saves it) and records every
state-dict key in order with its shape. ``tests/unit/networks/test_reference_names.py`` checks both directions
of our name mapping against these lists.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "benchmarks"))
from autounet.planning.reference import export_network
from reference import run_reference_python

OUT = REPO / "tests" / "data" / "golden" / "compat" / "state_keys.json"


def spec(name: str, feats: list[int], strides: list[list[int]], blocks: list[int], *, norm: str = "instance",
         kernel: int = 3) -> dict[str, Any]:
    ndim = len(strides[0])
    return {"name": name, "features_per_stage": feats, "kernel_sizes": [[kernel] * ndim] * len(feats),
            "strides": strides, "blocks_per_stage": blocks, "convs_per_stage_decoder": [2] * (len(feats) - 1),
            "conv_bias": True, "norm": norm, "nonlin": "leaky_relu"}


ITEMS = [
    {"id": "plain3d", "in_channels": 2, "num_outputs": 3,
     "spec": spec("plain_unet", [4, 8, 16], [[1, 1, 1], [1, 2, 2], [2, 2, 2]], [2, 2, 2])},
    {"id": "plain2d_batchnorm", "in_channels": 1, "num_outputs": 2,
     "spec": spec("plain_unet", [4, 8, 16, 16], [[1, 1], [2, 2], [2, 1], [2, 2]], [1, 2, 3, 2], norm="batch")},
    {"id": "resenc3d", "in_channels": 1, "num_outputs": 4,
     "spec": spec("resenc_unet", [4, 8, 16, 16], [[1, 1, 1], [2, 2, 2], [1, 1, 1], [2, 2, 2]], [1, 2, 2, 1])},
    {"id": "resenc2d_projection_without_pool", "in_channels": 3, "num_outputs": 2,
     "spec": spec("resenc_unet", [4, 8, 8], [[1, 1], [1, 1], [2, 2]], [2, 1, 2])},
]

CODE = r"""
import json, torch
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
items = json.loads(open(ITEMS, encoding="utf-8").read())
out = {}
for it in items:
    a = it["arch"]
    net = get_network_from_plans(a["network_class_name"], a["arch_kwargs"], a["_kw_requires_import"],
                                 it["in_channels"], it["num_outputs"], allow_init=True, deep_supervision=True)
    out[it["id"]] = [[k, list(v.shape)] for k, v in net.state_dict().items()]
print(json.dumps(out))
"""


def main() -> None:
    items = [{**it, "arch": export_network(it["spec"], where=it["id"])} for it in ITEMS]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "items.json"
        path.write_text(json.dumps(items), encoding="utf-8")
        keys = json.loads(run_reference_python(f"ITEMS = {str(path)!r}\n" + CODE, Path(tmp)))
    for it in items:
        it["keys"] = keys[it["id"]]
    OUT.parent.mkdir(parents=True, exist_ok=True)
    lines = ",\n".join(json.dumps(it) for it in items)  # one line per topology
    OUT.write_text(f"[\n{lines}\n]\n", encoding="utf-8")
    print(f"wrote {OUT} ({sum(len(it['keys']) for it in items)} keys)")


if __name__ == "__main__":
    main()
