"""The residual-encoder U-Net (the reference's ``ResidualEncoderUNet``, ResEnc planners; facts §6.3).

A stem conv block (``in_channels → features[0]``, kernel ``kernel_sizes[0]``, stride 1), then per stage
``blocks_per_stage[s]`` ResNet-D basic blocks (the first carries ``strides[s]``). The decoder is the plain one.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from autounet.networks.blocks import ConvNormAct, ResidualBlock
from autounet.networks.init import init_he, zero_last_norm_of_residual_blocks
from autounet.networks.unet import UNet
from autounet.schemas.plans import NetworkSpec


class ResidualEncoder(nn.Module):
    """Stem + stacked residual blocks per stage; returns every stage's output."""

    def __init__(self, spec: NetworkSpec, in_channels: int) -> None:
        super().__init__()
        kw: dict[str, Any] = {"bias": spec.conv_bias, "norm": spec.norm, "nonlin": spec.nonlin}
        feats = spec.features_per_stage
        self.stem = ConvNormAct(spec.ndim, in_channels, feats[0], spec.kernel_sizes[0], 1, **kw)
        stages = []
        ch = feats[0]
        for s in range(spec.n_stages):
            blocks = [ResidualBlock(spec.ndim, ch if b == 0 else feats[s], feats[s], spec.kernel_sizes[s],
                                    spec.strides[s] if b == 0 else 1, **kw)
                      for b in range(spec.blocks_per_stage[s])]
            stages.append(nn.Sequential(*blocks))
            ch = feats[s]
        self.stages = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        x = self.stem(x)
        skips = []
        for stage in self.stages:
            x = stage(x)
            skips.append(x)
        return skips


def build_resenc_unet(spec: NetworkSpec, *, in_channels: int, num_outputs: int, deep_supervision: bool) -> UNet:
    """A residual-encoder U-Net with He initialisation and zero-initialised last norms of the residual blocks."""
    net = UNet(spec, ResidualEncoder(spec, in_channels), num_outputs, deep_supervision=deep_supervision)
    init_he(net)
    zero_last_norm_of_residual_blocks(net)
    return net
