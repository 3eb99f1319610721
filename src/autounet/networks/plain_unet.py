"""The plain convolutional U-Net (the reference's ``PlainConvUNet``, default planner; facts §6.2).

Encoder stage ``s`` is a stack of ``blocks_per_stage[s]`` conv blocks; its first conv maps the previous stage's
features to ``features_per_stage[s]`` and carries ``strides[s]`` (downsampling by strided convolution, no pooling).
Every stage's output is a skip; the last stage is the bottleneck.
"""

from __future__ import annotations

import torch
from torch import nn

from autounet.networks.blocks import ConvStack
from autounet.networks.init import init_he
from autounet.networks.unet import UNet
from autounet.schemas.plans import NetworkSpec


class PlainEncoder(nn.Module):
    """Stacks of conv blocks, one per resolution stage; returns every stage's output."""

    def __init__(self, spec: NetworkSpec, in_channels: int) -> None:
        super().__init__()
        stages = []
        ch = in_channels
        for s in range(spec.n_stages):
            stages.append(ConvStack(spec.blocks_per_stage[s], spec.ndim, ch, spec.features_per_stage[s],
                                    spec.kernel_sizes[s], spec.strides[s], bias=spec.conv_bias, norm=spec.norm,
                                    nonlin=spec.nonlin))
            ch = spec.features_per_stage[s]
        self.stages = nn.ModuleList(stages)

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        skips = []
        for stage in self.stages:
            x = stage(x)
            skips.append(x)
        return skips


def build_plain_unet(spec: NetworkSpec, *, in_channels: int, num_outputs: int, deep_supervision: bool) -> UNet:
    """A plain U-Net with the reference's He initialisation."""
    net = UNet(spec, PlainEncoder(spec, in_channels), num_outputs, deep_supervision=deep_supervision)
    init_he(net)
    return net
