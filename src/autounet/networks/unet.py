"""The U-Net shell shared by both encoders: transposed-conv decoder, deep-supervision heads, memory format.

Decoder (facts §6.2): for each stage from the bottleneck upward, a transposed conv (kernel = stride = the encoder
stride of the stage below, with bias) maps the lower features to the skip's channel count; ``[upsampled, skip]``
are concatenated (upsampled first) and go through a stack of conv blocks (the first maps ``2·C → C``); a 1×1 conv
head with bias maps to the outputs. All heads always exist as parameters; with deep supervision the forward pass
returns every head's logits, highest resolution first, otherwise only the full-resolution logits.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

from autounet.networks.blocks import ConvStack, conv_layer, pair, triple
from autounet.schemas.plans import NetworkSpec


class UNetDecoder(nn.Module):
    """Decoder stages, transposed convs and segmentation heads, built from the encoder's per-stage layout."""

    def __init__(self, spec: NetworkSpec, num_outputs: int, *, deep_supervision: bool) -> None:
        super().__init__()
        ndim = spec.ndim
        feats = spec.features_per_stage
        n = spec.n_stages
        self.deep_supervision = deep_supervision
        self.transpconvs = nn.ModuleList()
        self.stages = nn.ModuleList()
        self.seg_layers = nn.ModuleList()
        for s in range(1, n):
            below, skip = feats[-s], feats[-(s + 1)]
            stride = tuple(spec.strides[-s])
            self.transpconvs.append(
                nn.ConvTranspose2d(below, skip, pair(stride), pair(stride), bias=spec.conv_bias) if ndim == 2
                else nn.ConvTranspose3d(below, skip, triple(stride), triple(stride), bias=spec.conv_bias))
            self.stages.append(ConvStack(spec.convs_per_stage_decoder[s - 1], ndim, 2 * skip, skip,
                                         spec.kernel_sizes[-(s + 1)], (1,) * ndim, bias=spec.conv_bias,
                                         norm=spec.norm, nonlin=spec.nonlin))
            self.seg_layers.append(conv_layer(ndim, skip, num_outputs, 1, 1, bias=True))

    def forward(self, skips: Sequence[torch.Tensor]) -> torch.Tensor | list[torch.Tensor]:
        x = skips[-1]
        outputs: list[torch.Tensor] = []
        last = len(self.stages) - 1
        for s, (up, stage) in enumerate(zip(self.transpconvs, self.stages)):
            x = stage(torch.cat((up(x), skips[-(s + 2)]), 1))
            if self.deep_supervision or s == last:
                outputs.append(self.seg_layers[s](x))
        outputs.reverse()
        return outputs if self.deep_supervision else outputs[0]


class UNet(nn.Module):
    """``decoder(encoder(x))``. Input ``(B, C, *spatial)``; output logits (a list with deep supervision).

    ``channels_last`` (see :meth:`set_channels_last`) keeps weights and activations in the channels-last memory
    format; inputs are converted on entry and outputs are returned contiguous, so callers never see the format.
    """

    def __init__(self, spec: NetworkSpec, encoder: nn.Module, num_outputs: int, *, deep_supervision: bool) -> None:
        super().__init__()
        self.spec = spec
        self.num_outputs = num_outputs
        self.encoder = encoder
        self.decoder = UNetDecoder(spec, num_outputs, deep_supervision=deep_supervision)
        self.channels_last = False

    @property
    def deep_supervision(self) -> bool:
        return self.decoder.deep_supervision

    @deep_supervision.setter
    def deep_supervision(self, enabled: bool) -> None:
        self.decoder.deep_supervision = bool(enabled)

    def set_channels_last(self, enabled: bool = True) -> UNet:
        """Switch weights (and, at each forward pass, inputs) to the channels-last memory format, or back."""
        fmt = self._memory_format() if enabled else torch.contiguous_format
        for module in self.modules():
            if isinstance(module, (nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.ConvTranspose3d)):
                module.weight.data = module.weight.data.contiguous(memory_format=fmt)
        self.channels_last = bool(enabled)
        return self

    def _memory_format(self) -> torch.memory_format:
        return torch.channels_last if self.spec.ndim == 2 else torch.channels_last_3d

    def forward(self, x: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        if self.channels_last:
            x = x.contiguous(memory_format=self._memory_format())
        out = self.decoder(self.encoder(x))
        if not self.channels_last:
            return out
        if isinstance(out, list):
            return [o.contiguous() for o in out]
        return out.contiguous()
