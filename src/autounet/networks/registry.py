"""Network registry and the builder every stage calls: ``build(spec, in_channels=..., num_outputs=...)``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from torch import nn

from autounet.errors import ConfigError
from autounet.networks.plain_unet import build_plain_unet
from autounet.networks.resenc_unet import build_resenc_unet
from autounet.networks.unet import UNet
from autounet.registry import Registry
from autounet.schemas.plans import NetworkSpec


class NetworkBuilder(Protocol):
    def __call__(self, spec: NetworkSpec, *, in_channels: int, num_outputs: int,
                 deep_supervision: bool) -> UNet: ...


NETWORKS: Registry[NetworkBuilder] = Registry("network")
NETWORKS.add("plain_unet", build_plain_unet, aliases=("PlainConvUNet",))
NETWORKS.add("resenc_unet", build_resenc_unet, aliases=("ResidualEncoderUNet",))


def build(spec: NetworkSpec, *, in_channels: int, num_outputs: int, deep_supervision: bool = True,
          channels_last: bool = False) -> UNet:
    """Build and initialise the U-Net that ``spec`` describes.

    Args:
        spec: the planned topology (``plans.configuration(name).network``).
        in_channels: input channels (image channels, plus the foreground labels for cascades).
        num_outputs: output channels (labels incl. background, or regions).
        deep_supervision: return every decoder head's logits (highest resolution first) instead of only the last.
        channels_last: keep weights and activations channels-last (faster on CPUs; see the README, *Networks*).

    Raises:
        ConfigError: unknown network/norm/nonlinearity name, or an invalid topology.
    """
    _check(spec, in_channels=in_channels, num_outputs=num_outputs)
    net = NETWORKS.get(spec.name)(spec, in_channels=in_channels, num_outputs=num_outputs,
                                  deep_supervision=deep_supervision)
    if channels_last:
        net.set_channels_last(True)
    return net


def unwrap(module: nn.Module) -> nn.Module:
    """The network inside DDP (``.module``) and ``torch.compile`` (``._orig_mod``) wrappers."""
    while True:
        inner = getattr(module, "_orig_mod", None)
        if inner is None:
            inner = getattr(module, "module", None)
        if not isinstance(inner, nn.Module):
            return module
        module = inner


def set_deep_supervision(module: nn.Module, enabled: bool) -> None:
    """Switch deep-supervision outputs on or off, through DDP and ``torch.compile`` wrappers."""
    net = unwrap(module)
    if not isinstance(net, UNet):
        msg = f"set_deep_supervision expects an autounet U-Net (possibly wrapped), got {type(net).__name__}."
        raise ConfigError(msg)
    net.deep_supervision = enabled


def count_parameters(module: nn.Module) -> int:
    """Number of parameters (weights, biases, norm affines, all heads)."""
    return sum(p.numel() for p in module.parameters())


def output_strides(spec: NetworkSpec) -> list[tuple[int, ...]]:
    """Downsampling factor of each deep-supervision output relative to the input, highest resolution first."""
    factors: list[tuple[int, ...]] = []
    cum = (1,) * spec.ndim
    for stride in spec.strides[:-1]:
        cum = tuple(c * int(s) for c, s in zip(cum, stride))
        factors.append(cum)
    return factors


def _check(spec: NetworkSpec, *, in_channels: int, num_outputs: int) -> None:
    where = f"network {spec.name!r}"
    if in_channels < 1 or num_outputs < 1:
        msg = f"{where}: in_channels ({in_channels}) and num_outputs ({num_outputs}) must be >= 1."
        raise ConfigError(msg)
    if spec.ndim not in (2, 3):
        msg = f"{where}: kernel sizes must have 2 or 3 entries, got {spec.kernel_sizes[0]}."
        raise ConfigError(msg)
    if spec.n_stages < 2:
        msg = f"{where}: a U-Net needs at least 2 stages, got {spec.n_stages}."
        raise ConfigError(msg)
    per_stage: Sequence[Sequence[int]] = (*spec.kernel_sizes, *spec.strides)
    if any(len(v) != spec.ndim for v in per_stage):
        msg = (f"{where}: every kernel size and stride must have {spec.ndim} entries "
               f"({spec.kernel_sizes}, {spec.strides}).")
        raise ConfigError(msg)
    if any(int(k) < 1 or int(k) % 2 == 0 for ks in spec.kernel_sizes for k in ks):
        msg = f"{where}: kernel sizes must be odd and positive for 'same' padding, got {spec.kernel_sizes}."
        raise ConfigError(msg)
    if any(int(s) < 1 for st in spec.strides for s in st):
        msg = f"{where}: strides must be >= 1, got {spec.strides}."
        raise ConfigError(msg)
    if any(b < 1 for b in (*spec.blocks_per_stage, *spec.convs_per_stage_decoder)):
        msg = (f"{where}: every stage needs at least one block (encoder {spec.blocks_per_stage}, decoder "
               f"{spec.convs_per_stage_decoder}).")
        raise ConfigError(msg)
