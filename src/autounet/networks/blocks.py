"""Building blocks of the U-Nets: conv → instance norm → leaky ReLU, stacks of them, and ResNet-D residual blocks.

Layer semantics follow the reference (dynamic-network-architectures 0.4.4, facts §6.1/§6.3):

- convolutions use "same" padding ``(k - 1) // 2`` and carry the stride only in the first conv of a stack;
- instance norm has ``eps = 1e-5`` and per-channel affine parameters, no running statistics;
- the nonlinearity is ``LeakyReLU(0.01)``;
- a residual block is ``act(norm(conv(act(norm(conv(x))))) + skip(x))`` with an ``AvgPool → 1×1 conv (no bias) →
  norm`` skip when the stride or the channel count changes.

Speed: the norm and the activation of a block run as one fused, memory-light operation on CPU tensors in the
channels-last memory format (see :mod:`autounet.networks._fused`); elsewhere (CUDA, contiguous CPU tensors,
``torch.compile`` tracing) plain PyTorch ops are used, which compile and autocast normally.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from typing import Final, Literal

import torch
import torch.nn.functional as F
from torch import nn

from autounet.networks import _fused
from autounet.registry import Registry

NORMS: Registry[Callable[[int, int], nn.Module]] = Registry("normalization")
NONLINS: Registry[Callable[[], nn.Module]] = Registry("nonlinearity")

INSTANCE_NORM_EPS = 1e-5
LEAKY_SLOPE = 1e-2


class InstanceNorm(nn.Module):
    """Instance normalisation with per-channel affine parameters (``weight``, ``bias``), as ``InstanceNormNd``.

    Numerically the same as ``nn.InstanceNorm{2,3}d(C, eps=1e-5, affine=True)`` and with the same state-dict keys,
    but dispatched to the fastest kernel: ``group_norm`` with one channel per group on contiguous CPU tensors
    (about twice as fast as ``instance_norm``, which copies through ``batch_norm``), ``instance_norm`` on CUDA
    (cuDNN, autocast-friendly).
    """

    def __init__(self, num_features: int, eps: float = INSTANCE_NORM_EPS) -> None:
        super().__init__()
        self.num_features = num_features
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(num_features))
        self.bias = nn.Parameter(torch.zeros(num_features))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.is_cuda or torch.compiler.is_compiling():
            return F.instance_norm(x, weight=self.weight, bias=self.bias, eps=self.eps)
        return F.group_norm(x, self.num_features, self.weight, self.bias, self.eps)

    def extra_repr(self) -> str:
        return f"{self.num_features}, eps={self.eps}"


NORMS.add("instance", lambda c, ndim: InstanceNorm(c), aliases=("InstanceNorm3d", "InstanceNorm2d"))
NORMS.add("batch", lambda c, ndim: (nn.BatchNorm2d if ndim == 2 else nn.BatchNorm3d)(c),
          aliases=("BatchNorm3d", "BatchNorm2d"))
NONLINS.add("leaky_relu", lambda: nn.LeakyReLU(LEAKY_SLOPE, inplace=True), aliases=("LeakyReLU",))
NONLINS.add("relu", lambda: nn.ReLU(inplace=True), aliases=("ReLU",))


def conv_layer(ndim: int, in_ch: int, out_ch: int, kernel: Sequence[int] | int, stride: Sequence[int] | int = 1,
               *, bias: bool) -> nn.Module:
    """A ``Conv{2,3}d`` with "same" padding ``(k - 1) // 2`` per axis."""
    kernel = _per_axis(kernel, ndim)
    stride = _per_axis(stride, ndim)
    padding = tuple((k - 1) // 2 for k in kernel)
    if ndim == 2:
        return nn.Conv2d(in_ch, out_ch, pair(kernel), pair(stride), padding=pair(padding), bias=bias)
    return nn.Conv3d(in_ch, out_ch, triple(kernel), triple(stride), padding=triple(padding), bias=bias)


class ConvNormAct(nn.Module):
    """``conv → norm → nonlinearity`` (the nonlinearity is optional), the reference's ``ConvDropoutNormReLU``."""

    def __init__(self, ndim: int, in_ch: int, out_ch: int, kernel: Sequence[int] | int,
                 stride: Sequence[int] | int = 1, *, bias: bool, norm: str, nonlin: str | None) -> None:
        super().__init__()
        self.conv = conv_layer(ndim, in_ch, out_ch, kernel, stride, bias=bias)
        self.norm = NORMS.get(norm)(out_ch, ndim)
        self.act = NONLINS.get(nonlin)() if nonlin is not None else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return norm_act(self.conv(x), self.norm, self.act)


def norm_act(x: torch.Tensor, norm: nn.Module, act: nn.Module | None,
             residual: torch.Tensor | None = None) -> torch.Tensor:
    """``act(norm(x) + residual)``, fused into one pass when :func:`_fused.applies` to ``x``."""
    if isinstance(norm, InstanceNorm) and _fused.applies(x):
        slope = _slope(act)
        if slope is not _UNSUPPORTED:
            return _fused.instance_norm_act(x, norm.weight, norm.bias, norm.eps, slope, residual)
    y = norm(x)
    if residual is not None:
        y = y + residual
    return act(y) if act is not None else y


class _Unsupported(enum.Enum):
    """Type of the ``_UNSUPPORTED`` marker (an activation the fused kernel cannot apply)."""

    TOKEN = 0


_UNSUPPORTED: Final = _Unsupported.TOKEN


def _slope(act: nn.Module | None) -> float | None | Literal[_Unsupported.TOKEN]:
    """Negative slope of a (leaky) ReLU, ``None`` for no activation, ``_UNSUPPORTED`` otherwise."""
    if act is None:
        return None
    if isinstance(act, nn.LeakyReLU):
        return float(act.negative_slope)
    if isinstance(act, nn.ReLU):
        return 0.0
    return _UNSUPPORTED


class ConvStack(nn.Sequential):
    """``n`` :class:`ConvNormAct` blocks; the first maps ``in_ch → out_ch`` and carries ``stride``."""

    def __init__(self, n: int, ndim: int, in_ch: int, out_ch: int, kernel: Sequence[int], stride: Sequence[int],
                 *, bias: bool, norm: str, nonlin: str) -> None:
        blocks = [ConvNormAct(ndim, in_ch if i == 0 else out_ch, out_ch, kernel, stride if i == 0 else 1,
                              bias=bias, norm=norm, nonlin=nonlin) for i in range(n)]
        super().__init__(*blocks)


class ResidualBlock(nn.Module):
    """ResNet-D basic block (the reference's ``BasicBlockD``).

    ``conv1`` (conv, norm, act; carries the stride), ``conv2`` (conv, norm; no act), a skip path (identity, or
    ``AvgPool(stride)`` when strided followed by a bias-free 1×1 conv + norm when the channel count changes), and
    the nonlinearity after the sum.
    """

    def __init__(self, ndim: int, in_ch: int, out_ch: int, kernel: Sequence[int], stride: Sequence[int] | int,
                 *, bias: bool, norm: str, nonlin: str) -> None:
        super().__init__()
        stride = _per_axis(stride, ndim)
        self.conv1 = ConvNormAct(ndim, in_ch, out_ch, kernel, stride, bias=bias, norm=norm, nonlin=nonlin)
        self.conv2 = ConvNormAct(ndim, out_ch, out_ch, kernel, 1, bias=bias, norm=norm, nonlin=None)
        self.act = NONLINS.get(nonlin)()
        strided = any(s != 1 for s in stride)
        self.pool: nn.Module | None = None
        if strided:
            self.pool = (nn.AvgPool2d(pair(stride), pair(stride)) if ndim == 2
                         else nn.AvgPool3d(triple(stride), triple(stride)))
        self.skip = (ConvNormAct(ndim, in_ch, out_ch, 1, 1, bias=False, norm=norm, nonlin=None)
                     if in_ch != out_ch else None)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual = x
        if self.pool is not None:
            residual = self.pool(residual)
        if self.skip is not None:
            residual = self.skip(residual)
        out = self.conv2.conv(self.conv1(x))
        return norm_act(out, self.conv2.norm, self.act, residual=residual)


def pair(values: Sequence[int]) -> tuple[int, int]:
    """Two per-axis values as the fixed-length tuple that torch's 2D layers are typed for."""
    a, b = values
    return a, b


def triple(values: Sequence[int]) -> tuple[int, int, int]:
    """Three per-axis values as the fixed-length tuple that torch's 3D layers are typed for."""
    a, b, c = values
    return a, b, c


def _per_axis(value: Sequence[int] | int, ndim: int) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,) * ndim
    return tuple(int(v) for v in value)
