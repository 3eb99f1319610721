"""Weight initialisation as the reference does it (facts §6.2/§6.3).

- Every (transposed) convolution: ``kaiming_normal_(weight, a=0.01)`` (fan-in, leaky-ReLU gain), bias 0.
- Norm layers keep PyTorch's defaults (weight 1, bias 0).
- Residual encoders: the norm after the second conv of every residual block starts at weight 0, bias 0, so each
  block starts as its skip path.
"""

from __future__ import annotations

from torch import nn

from autounet.networks.blocks import ResidualBlock

HE_NEGATIVE_SLOPE = 1e-2

_CONVS = (nn.Conv2d, nn.Conv3d, nn.ConvTranspose2d, nn.ConvTranspose3d)


def init_he(module: nn.Module, *, neg_slope: float = HE_NEGATIVE_SLOPE) -> None:
    """Kaiming-normal weights and zero biases for every (transposed) convolution under ``module``."""
    for m in module.modules():
        if isinstance(m, _CONVS):
            nn.init.kaiming_normal_(m.weight, a=neg_slope)
            if m.bias is not None:
                nn.init.zeros_(m.bias)


def zero_last_norm_of_residual_blocks(module: nn.Module) -> None:
    """Zero the affine parameters of ``conv2.norm`` in every residual block under ``module``."""
    for m in module.modules():
        if isinstance(m, ResidualBlock):
            nn.init.zeros_(m.conv2.norm.get_parameter("weight"))
            nn.init.zeros_(m.conv2.norm.get_parameter("bias"))
