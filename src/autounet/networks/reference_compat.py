"""State-dict names of reference (nnU-Net v2 / dynamic-network-architectures) networks <-> autounet U-Nets.

The reference's state dicts list every parameter several times (each conv block registers its layers both by
name and inside an ``all_modules`` sequence, and the decoder keeps a reference to the encoder), and nest the
stages one level deeper. :func:`convert_reference_state_dict` drops the aliases and renames the rest; the result
loads with ``strict=True`` into the autounet network built from the same plans. :func:`to_reference_state_dict`
is its inverse (aliases re-created, sharing the tensors): a checkpoint written with it loads with ``strict=True``
into the reference's network, and converting back gives the original keys (checked on every call).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch

from autounet.errors import CheckpointError

_RENAMES: tuple[tuple[re.Pattern[str], str], ...] = tuple((re.compile(p), r) for p, r in (
    (r"^encoder\.stem\.convs\.0\.", "encoder.stem."),
    (r"^encoder\.stages\.(\d+)\.0\.convs\.(\d+)\.", r"encoder.stages.\1.\2."),
    (r"^encoder\.stages\.(\d+)\.blocks\.(\d+)\.", r"encoder.stages.\1.\2."),
    (r"\.skip\.\d+\.(conv|norm)\.", r".skip.\1."),
    (r"^decoder\.stages\.(\d+)\.convs\.(\d+)\.", r"decoder.stages.\1.\2."),
))
_WRAPPER_PREFIXES = ("module.", "_orig_mod.")


def convert_reference_state_dict(state_dict: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Reference ``network_weights`` → an autounet state dict (aliases dropped, keys renamed)."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        key = _strip_wrappers(key)
        if ".all_modules." in key or key.startswith("decoder.encoder."):
            continue
        for pattern, repl in _RENAMES:
            key = pattern.sub(repl, key)
        out[key] = value
    return out


def _strip_wrappers(key: str) -> str:
    changed = True
    while changed:
        changed = False
        for prefix in _WRAPPER_PREFIXES:
            if key.startswith(prefix):
                key = key[len(prefix):]
                changed = True
    return key


_ENCODER = re.compile(r"^encoder\.stages\.(\d+)\.(\d+)\.(.*)$")
_DECODER = re.compile(r"^decoder\.stages\.(\d+)\.(\d+)\.(.*)$")
_CONV_NORM = re.compile(r"^(.*)\.(conv|norm)\.([^.]+)$")
_ALIAS_INDEX = {"conv": 0, "norm": 1}  # all_modules = (conv, norm, nonlin) without dropout


def to_reference_state_dict(state_dict: Mapping[str, torch.Tensor], spec: Any) -> dict[str, torch.Tensor]:
    """An autounet state dict -> the reference network's ``state_dict`` (aliases included, same tensors).

    ``spec`` is the :class:`~autounet.schemas.plans.NetworkSpec` the weights belong to (``plain_unet`` or
    ``resenc_unet``; ResEnc skip paths need the strides). Raises ``CheckpointError`` when a key has no reference
    name or the mapping would not invert.
    """
    if spec.name not in ("plain_unet", "resenc_unet"):
        raise CheckpointError(f"Network {spec.name!r} has no reference (nnU-Net) equivalent.")
    out: dict[str, torch.Tensor] = {}
    for key, value in state_dict.items():
        name = _reference_name(_strip_wrappers(key), spec)
        out[name] = value
        alias = _CONV_NORM.match(name)
        if alias:
            out[f"{alias.group(1)}.all_modules.{_ALIAS_INDEX[alias.group(2)]}.{alias.group(3)}"] = value
    for name in [k for k in out if k.startswith("encoder.")]:
        out[f"decoder.{name}"] = out[name]
    back = convert_reference_state_dict(out)
    expected = {_strip_wrappers(k) for k in state_dict}
    if set(back) != expected:
        odd = sorted(set(back) ^ expected)[:3]
        raise CheckpointError(f"State-dict names do not map to the reference's and back: {', '.join(odd)}.")
    return out


def _reference_name(key: str, spec: Any) -> str:
    resenc = spec.name == "resenc_unet"
    if resenc and key.startswith("encoder.stem."):
        return "encoder.stem.convs.0." + key[len("encoder.stem."):]
    m = _ENCODER.match(key)
    if m:
        stage, index, rest = int(m.group(1)), int(m.group(2)), m.group(3)
        if not resenc:
            return f"encoder.stages.{stage}.0.convs.{index}.{rest}"
        if rest.startswith("skip."):
            pooled = index == 0 and any(int(s) != 1 for s in spec.strides[stage])
            rest = f"skip.{1 if pooled else 0}.{rest[len('skip.'):]}"
        return f"encoder.stages.{stage}.blocks.{index}.{rest}"
    m = _DECODER.match(key)
    if m:
        return f"decoder.stages.{m.group(1)}.convs.{m.group(2)}.{m.group(3)}"
    if key.startswith(("decoder.transpconvs.", "decoder.seg_layers.")):
        return key
    raise CheckpointError(f"State-dict key {key!r} has no reference (nnU-Net) name.")
