"""Parameter counts equal the reference's for the same plans (golden counts made with the reference venv)."""

from __future__ import annotations

import json

import pytest
import torch
from _networks_testlib import GOLDEN, iso_spec

from autounet import networks
from autounet.schemas.plans import NetworkSpec

_GOLDEN = json.loads((GOLDEN / "param_counts.json").read_text(encoding="utf-8"))["networks"]


@pytest.mark.parametrize("item", _GOLDEN, ids=[it["id"] for it in _GOLDEN])
def test_parameter_count_equals_reference(item: dict) -> None:
    spec = NetworkSpec.from_dict(item["spec"], where=item["id"])
    with torch.device("meta"):  # shapes only: no memory, no initialisation cost
        net = networks.build(spec, in_channels=item["in_channels"], num_outputs=item["num_outputs"])
    assert networks.count_parameters(net) == item["parameters"]


@pytest.mark.parametrize(("name", "feats", "ndim", "expected"), [
    # the table of facts §6.5 (1 input channel, 3 outputs, kernels 3, isotropic strides)
    ("plain_unet", (32, 64, 128, 256), 3, 5_603_177),
    ("plain_unet", (32, 64, 128, 256, 320, 320), 3, 31_196_399),
    ("plain_unet", (32, 64, 128, 256, 320, 320, 320), 3, 45_844_722),
    ("plain_unet", (32, 64, 128, 256, 512, 512, 512, 512), 2, 46_326_581),
    ("resenc_unet", (32, 64, 128, 256, 320, 320), 3, 102_350_575),
    ("resenc_unet", (32, 64, 128, 256, 320, 320, 320), 3, 141_890_738),
    ("resenc_unet", (32, 64, 128, 256, 512, 512, 512, 512), 2, 140_019_061),
])
def test_facts_table(name: str, feats: tuple[int, ...], ndim: int, expected: int) -> None:
    with torch.device("meta"):
        net = networks.build(iso_spec(name, feats, ndim), in_channels=1, num_outputs=3)
    assert networks.count_parameters(net) == expected


def _conv(cin: int, cout: int, k: int, ndim: int, bias: bool = True) -> int:
    return cin * cout * k ** ndim + (cout if bias else 0)


def test_plain_count_from_layer_formulas() -> None:
    """An independent count from the layer formulas (conv weights + biases, norm affines, transp convs, heads)."""
    feats, ndim, cin, nout = (4, 8, 16), 3, 2, 5
    expected = 0
    prev = cin
    for f in feats:  # encoder: 2 conv blocks per stage
        expected += _conv(prev, f, 3, ndim) + 2 * f + _conv(f, f, 3, ndim) + 2 * f
        prev = f
    for below, skip in ((16, 8), (8, 4)):  # decoder
        expected += below * skip * 2 ** ndim + skip  # transposed conv, kernel = stride = 2
        expected += _conv(2 * skip, skip, 3, ndim) + 2 * skip + _conv(skip, skip, 3, ndim) + 2 * skip
        expected += _conv(skip, nout, 1, ndim)  # head
    net = networks.build(iso_spec("plain_unet", feats), in_channels=cin, num_outputs=nout)
    assert networks.count_parameters(net) == expected
