"""Blocks: norm equivalence, the fused channels-last norm/activation (values and gradients), layer layout."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from autounet.networks import _fused
from autounet.networks.blocks import ConvNormAct, ConvStack, InstanceNorm, ResidualBlock, norm_act


def _cl(x: torch.Tensor) -> torch.Tensor:
    return x.contiguous(memory_format=torch.channels_last_3d if x.dim() == 5 else torch.channels_last)


@pytest.mark.parametrize("shape", [(2, 3, 5, 6, 4), (3, 4, 7, 5)])
def test_instance_norm_equals_torch_instance_norm(shape: tuple[int, ...]) -> None:
    torch.manual_seed(0)
    x = torch.randn(shape) * 3 + 1
    ours = InstanceNorm(shape[1])
    ref = (nn.InstanceNorm3d if len(shape) == 5 else nn.InstanceNorm2d)(shape[1], eps=1e-5, affine=True)
    with torch.no_grad():
        for m in (ours, ref):
            m.weight.copy_(torch.arange(shape[1]) * 0.5 - 0.3)
            m.bias.copy_(torch.arange(shape[1]) * 0.1)
    torch.testing.assert_close(ours(x), ref(x), rtol=1e-5, atol=1e-5)
    assert sorted(ours.state_dict()) == sorted(ref.state_dict()) == ["bias", "weight"]


@pytest.mark.parametrize("slope", [None, 0.0, 0.01])
@pytest.mark.parametrize("residual", [False, True])
@pytest.mark.parametrize("ndim", [2, 3])
def test_fused_matches_unfused_with_gradients(slope: float | None, residual: bool, ndim: int) -> None:
    torch.manual_seed(1)
    shape = (2, 3, 4, 5, 3)[: ndim + 2]
    x = _cl(torch.randn(shape, dtype=torch.float64) * 2 + 0.5).requires_grad_()
    w = torch.randn(3, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, dtype=torch.float64, requires_grad=True)
    r = torch.randn(shape, dtype=torch.float64, requires_grad=True) if residual else None
    assert _fused.applies(x)

    def reference(x, w, b, r):  # noqa: ANN001, ANN202
        y = F.instance_norm(x, weight=w, bias=b, eps=1e-5)
        y = y + r if r is not None else y
        return y if slope is None else F.leaky_relu(y, slope)

    def fused(x, w, b, r):  # noqa: ANN001, ANN202
        return _fused.instance_norm_act(x, w, b, 1e-5, slope, r)

    inputs = (x, w, b, r)
    torch.testing.assert_close(fused(*inputs), reference(*inputs))
    g = torch.randn(shape, dtype=torch.float64)
    grads_f = torch.autograd.grad(fused(*inputs), [t for t in inputs if t is not None], g)
    grads_r = torch.autograd.grad(reference(*inputs), [t for t in inputs if t is not None], g)
    for a, e in zip(grads_f, grads_r):
        torch.testing.assert_close(a, e)
    assert torch.autograd.gradcheck(fused, inputs)


def test_fused_path_only_for_channels_last_cpu_float() -> None:
    x = torch.randn(2, 3, 4, 5, 6)
    assert not _fused.applies(x)  # contiguous
    assert _fused.applies(_cl(x))
    assert not _fused.applies(_cl(x).to(torch.bfloat16))
    assert not _fused.applies(torch.randn(2, 3, 4))


def test_norm_act_dispatch_gives_same_result_for_both_layouts() -> None:
    torch.manual_seed(2)
    norm, act = InstanceNorm(4), nn.LeakyReLU(0.01, inplace=True)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-0.2, 0.2)
    x = torch.randn(2, 4, 6, 5, 4)
    torch.testing.assert_close(norm_act(_cl(x), norm, act), norm_act(x.clone(), norm, act), rtol=1e-5, atol=1e-5)


def test_conv_block_same_padding_and_stride_on_first_conv_only() -> None:
    stack = ConvStack(3, 3, 2, 8, (1, 3, 5), (1, 2, 2), bias=True, norm="instance", nonlin="leaky_relu")
    assert [m.conv.stride for m in stack] == [(1, 2, 2), (1, 1, 1), (1, 1, 1)]
    assert [m.conv.padding for m in stack] == [(0, 1, 2)] * 3
    assert stack(torch.randn(1, 2, 4, 8, 10)).shape == (1, 8, 4, 4, 5)
    block = ConvNormAct(2, 3, 5, 3, 1, bias=False, norm="instance", nonlin=None)
    assert block.conv.bias is None and block.act is None


def test_residual_block_skip_paths() -> None:
    same = ResidualBlock(3, 8, 8, (3, 3, 3), 1, bias=True, norm="instance", nonlin="leaky_relu")
    assert same.pool is None and same.skip is None
    strided = ResidualBlock(3, 8, 16, (3, 3, 3), (1, 2, 2), bias=True, norm="instance", nonlin="leaky_relu")
    assert isinstance(strided.pool, nn.AvgPool3d) and strided.pool.kernel_size == (1, 2, 2)
    assert strided.skip is not None and strided.skip.conv.bias is None
    assert strided.skip.conv.kernel_size == (1, 1, 1) and strided.skip.act is None
    assert strided.conv2.act is None and strided.conv1.conv.stride == (1, 2, 2)
    assert strided(torch.randn(2, 8, 4, 6, 6)).shape == (2, 16, 4, 3, 3)


def test_residual_block_forward_formula() -> None:
    torch.manual_seed(3)
    block = ResidualBlock(2, 4, 6, (3, 3), 2, bias=True, norm="instance", nonlin="leaky_relu")
    with torch.no_grad():
        for p in block.parameters():
            p.normal_()
    x = torch.randn(2, 4, 8, 6)
    c1 = F.leaky_relu(F.instance_norm(block.conv1.conv(x), weight=block.conv1.norm.weight,
                                      bias=block.conv1.norm.bias, eps=1e-5), 0.01)
    c2 = F.instance_norm(block.conv2.conv(c1), weight=block.conv2.norm.weight, bias=block.conv2.norm.bias, eps=1e-5)
    skip = F.instance_norm(block.skip.conv(F.avg_pool2d(x, 2, 2)), weight=block.skip.norm.weight,
                           bias=block.skip.norm.bias, eps=1e-5)
    torch.testing.assert_close(block(x), F.leaky_relu(c2 + skip, 0.01), rtol=1e-5, atol=1e-5)
