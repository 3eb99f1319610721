"""Helpers for the network tests: NetworkSpec factories and the golden folder."""

from __future__ import annotations

from pathlib import Path

from autounet.schemas.plans import NetworkSpec

GOLDEN = Path(__file__).resolve().parents[2] / "data" / "golden" / "networks"


def iso_spec(name: str, feats: tuple[int, ...], ndim: int = 3, *, blocks: tuple[int, ...] | None = None,
             dec: int | None = None) -> NetworkSpec:
    """An isotropic topology: kernels 3, stride 1 then 2 per stage."""
    n = len(feats)
    resenc = name == "resenc_unet"
    return NetworkSpec(name=name, features_per_stage=feats, kernel_sizes=((3,) * ndim,) * n,
                       strides=((1,) * ndim,) + ((2,) * ndim,) * (n - 1),
                       blocks_per_stage=blocks or ((1, 3, 4, 6, 6, 6, 6, 6)[:n] if resenc else (2,) * n),
                       convs_per_stage_decoder=(dec or (1 if resenc else 2),) * (n - 1))
