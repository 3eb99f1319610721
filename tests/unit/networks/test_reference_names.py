"""Our state-dict names <-> the reference network's (golden key lists made in the reference venv)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from autounet import networks
from autounet.errors import CheckpointError
from autounet.schemas.plans import NetworkSpec

GOLDEN = Path(__file__).resolve().parents[2] / "data" / "golden" / "compat" / "state_keys.json"
_ITEMS = json.loads(GOLDEN.read_text(encoding="utf-8"))


def _net(item: dict) -> tuple[NetworkSpec, networks.UNet]:
    spec = NetworkSpec.from_dict(item["spec"], where=item["id"])
    return spec, networks.build(spec, in_channels=item["in_channels"], num_outputs=item["num_outputs"])


@pytest.mark.parametrize("item", _ITEMS, ids=[it["id"] for it in _ITEMS])
def test_to_reference_gives_exactly_the_reference_keys_and_shapes(item: dict) -> None:
    spec, net = _net(item)
    ours = net.state_dict()
    theirs = networks.to_reference_state_dict(ours, spec)
    assert {k: list(v.shape) for k, v in theirs.items()} == {k: shape for k, shape in item["keys"]}


@pytest.mark.parametrize("item", _ITEMS, ids=[it["id"] for it in _ITEMS])
def test_reference_keys_convert_to_ours_and_back(item: dict) -> None:
    spec, net = _net(item)
    ours = net.state_dict()
    theirs = networks.to_reference_state_dict(ours, spec)
    back = networks.convert_reference_state_dict(theirs)
    assert list(back) == list(ours)
    assert all(back[k] is ours[k] for k in ours)  # aliases share the tensors, nothing copied
    assert sorted(networks.convert_reference_state_dict({k: torch.zeros(1) for k, _ in item["keys"]})) == \
        sorted(ours)


def test_wrapped_keys_are_unwrapped() -> None:
    spec, net = _net(_ITEMS[0])
    wrapped = {f"module._orig_mod.{k}": v for k, v in net.state_dict().items()}
    assert set(networks.to_reference_state_dict(wrapped, spec)) == {k for k, _ in _ITEMS[0]["keys"]}


def test_unknown_key_is_refused() -> None:
    spec, net = _net(_ITEMS[0])
    sd = dict(net.state_dict())
    sd["extra.head.weight"] = torch.zeros(1)
    with pytest.raises(CheckpointError, match="extra.head.weight"):
        networks.to_reference_state_dict(sd, spec)
