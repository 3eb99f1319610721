"""Load weights of reference (nnU-Net v2 / dynamic-network-architectures) networks into autounet U-Nets.

The reference's state dicts list every parameter several times (each conv block registers its layers both by
name and inside an ``all_modules`` sequence, and the decoder keeps a reference to the encoder), and nest the
stages one level deeper. :func:`convert_reference_state_dict` drops the aliases and renames the rest; the result
loads with ``strict=True`` into the autounet network built from the same plans.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

import torch

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
