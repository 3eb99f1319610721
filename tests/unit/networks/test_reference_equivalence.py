"""With the reference's weights, our networks compute the reference's outputs (golden made in the reference venv)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from _networks_testlib import GOLDEN

from autounet import networks
from autounet.schemas.plans import NetworkSpec

_ITEMS = json.loads((GOLDEN / "forward.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    with np.load(GOLDEN / "forward.npz") as f:
        return {k: f[k] for k in f.files}


def _reference_state(golden: dict[str, np.ndarray], key: str) -> dict[str, torch.Tensor]:
    prefix = f"{key}/state/"
    return {k[len(prefix):]: torch.from_numpy(v) for k, v in golden.items() if k.startswith(prefix)}


def _build(item: dict) -> networks.UNet:
    spec = NetworkSpec.from_dict(item["spec"], where=item["id"])
    return networks.build(spec, in_channels=item["in_channels"], num_outputs=item["num_outputs"])


@pytest.mark.parametrize("item", _ITEMS, ids=[it["id"] for it in _ITEMS])
def test_converted_keys_are_exactly_ours(item: dict, golden: dict[str, np.ndarray]) -> None:
    keys = [str(k) for k in golden[f"{item['id']}/state_keys"]]
    converted = networks.convert_reference_state_dict({k: torch.zeros(1) for k in keys})
    assert sorted(converted) == sorted(_build(item).state_dict())


@pytest.mark.parametrize("channels_last", [False, True], ids=["contiguous", "channels_last"])
@pytest.mark.parametrize("item", _ITEMS, ids=[it["id"] for it in _ITEMS])
def test_outputs_equal_reference(item: dict, golden: dict[str, np.ndarray], channels_last: bool) -> None:
    key = item["id"]
    net = _build(item)
    net.load_state_dict(networks.convert_reference_state_dict(_reference_state(golden, key)), strict=True)
    net.set_channels_last(channels_last)
    x = torch.from_numpy(golden[f"{key}/input"])
    with torch.no_grad():
        outs = net(x)
    expected = [golden[f"{key}/output{i}"] for i in range(len(item["spec"]["features_per_stage"]) - 1)]
    assert len(outs) == len(expected)
    for out, ref in zip(outs, expected):
        assert out.shape == ref.shape
        np.testing.assert_allclose(out.numpy(), ref, rtol=1e-5, atol=3e-5)
    networks.set_deep_supervision(net, False)
    with torch.no_grad():
        np.testing.assert_allclose(net(x).numpy(), expected[0], rtol=1e-5, atol=3e-5)


def test_wrapper_prefixes_are_stripped() -> None:
    state = {"module._orig_mod.decoder.seg_layers.0.weight": torch.zeros(1),
             "_orig_mod.encoder.stages.0.0.convs.1.all_modules.0.weight": torch.zeros(1)}
    assert list(networks.convert_reference_state_dict(state)) == ["decoder.seg_layers.0.weight"]
