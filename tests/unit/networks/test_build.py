"""Building from a NetworkSpec: registry, outputs, deep supervision, initialisation, memory format, compile, AMP."""

from __future__ import annotations

import math

import pytest
import torch
from _networks_testlib import iso_spec
from torch import nn

from autounet import networks
from autounet.errors import ConfigError
from autounet.networks.blocks import InstanceNorm, ResidualBlock
from autounet.schemas.plans import NetworkSpec

TINY3D = iso_spec("plain_unet", (4, 8, 16))
TINY_RES = iso_spec("resenc_unet", (4, 8, 16), blocks=(1, 2, 2))


def test_unknown_network_name_suggests() -> None:
    spec = NetworkSpec(**{**TINY3D.__dict__, "name": "plain_unte"})
    with pytest.raises(ConfigError, match="plain_unet"):
        networks.build(spec, in_channels=1, num_outputs=2)


def test_reference_class_names_are_aliases() -> None:
    assert networks.NETWORKS.canonical("PlainConvUNet") == "plain_unet"
    assert networks.NETWORKS.canonical("ResidualEncoderUNet") == "resenc_unet"


@pytest.mark.parametrize(("change", "match"), [
    ({"kernel_sizes": ((3, 3, 3), (2, 2, 2), (3, 3, 3))}, "odd"),
    ({"strides": ((1, 1, 1), (0, 2, 2), (2, 2, 2))}, "strides"),
    ({"blocks_per_stage": (2, 0, 2)}, "at least one block"),
    ({"norm": "layer"}, "normalization"),
    ({"nonlin": "gelu"}, "nonlinearity"),
])
def test_invalid_topologies_raise_config_error(change: dict, match: str) -> None:
    spec = NetworkSpec(**{**TINY3D.__dict__, **change})
    with pytest.raises(ConfigError, match=match):
        networks.build(spec, in_channels=1, num_outputs=2)


def test_bad_channel_counts() -> None:
    with pytest.raises(ConfigError, match="in_channels"):
        networks.build(TINY3D, in_channels=0, num_outputs=2)


@pytest.mark.parametrize("spec", [TINY3D, TINY_RES], ids=["plain", "resenc"])
def test_deep_supervision_outputs_highest_resolution_first(spec: NetworkSpec) -> None:
    net = networks.build(spec, in_channels=2, num_outputs=3)
    outs = net(torch.randn(2, 2, 8, 12, 16))
    assert [tuple(o.shape) for o in outs] == [(2, 3, 8, 12, 16), (2, 3, 4, 6, 8)]
    assert networks.output_strides(spec) == [(1, 1, 1), (2, 2, 2)]
    networks.set_deep_supervision(net, False)
    assert net(torch.randn(1, 2, 8, 12, 16)).shape == (1, 3, 8, 12, 16)


def test_anisotropic_2d_and_output_strides() -> None:
    spec = NetworkSpec(name="plain_unet", features_per_stage=(4, 8, 8, 16), kernel_sizes=((3, 3),) * 4,
                       strides=((1, 1), (2, 2), (2, 1), (2, 2)), blocks_per_stage=(1, 1, 1, 1),
                       convs_per_stage_decoder=(1, 1, 1))
    net = networks.build(spec, in_channels=3, num_outputs=2)
    outs = net(torch.randn(2, 3, 16, 8))
    assert [tuple(o.shape[2:]) for o in outs] == [(16, 8), (8, 4), (4, 4)]
    assert networks.output_strides(spec) == [(1, 1), (2, 2), (4, 2)]


class _Wrapper(nn.Module):
    def __init__(self, inner: nn.Module, attr: str) -> None:
        super().__init__()
        setattr(self, attr, inner)


def test_set_deep_supervision_through_wrappers() -> None:
    net = networks.build(TINY3D, in_channels=1, num_outputs=2)
    wrapped = _Wrapper(_Wrapper(net, "_orig_mod"), "module")  # DDP(compile(net)) layout
    networks.set_deep_supervision(wrapped, False)
    assert net.deep_supervision is False and net.decoder.deep_supervision is False
    assert networks.unwrap(wrapped) is net
    with pytest.raises(ConfigError, match="U-Net"):
        networks.set_deep_supervision(nn.Linear(2, 2), True)


def test_he_initialisation_and_zero_biases() -> None:
    torch.manual_seed(0)
    spec = iso_spec("plain_unet", (32, 64))
    net = networks.build(spec, in_channels=1, num_outputs=2)
    conv = net.encoder.stages[1][1].conv  # 64 -> 64, 3x3x3
    fan_in = 64 * 27
    expected_std = math.sqrt(2.0 / (1 + 0.01 ** 2)) / math.sqrt(fan_in)
    assert conv.weight.std().item() == pytest.approx(expected_std, rel=0.02)
    assert abs(conv.weight.mean().item()) < 0.05 * expected_std * 10
    tconv = net.decoder.transpconvs[0]  # kaiming on ConvTranspose uses weight.size(1) * k^3 as fan-in
    assert tconv.weight.std().item() == pytest.approx(
        math.sqrt(2.0 / (1 + 0.01 ** 2)) / math.sqrt(32 * 8), rel=0.05)
    for m in net.modules():
        if isinstance(m, (nn.Conv3d, nn.ConvTranspose3d)) and m.bias is not None:
            assert torch.count_nonzero(m.bias) == 0
        if isinstance(m, InstanceNorm):
            assert torch.all(m.weight == 1) and torch.all(m.bias == 0)


def test_resenc_zero_inits_the_last_norm_of_each_block() -> None:
    net = networks.build(TINY_RES, in_channels=1, num_outputs=2)
    blocks = [m for m in net.modules() if isinstance(m, ResidualBlock)]
    assert len(blocks) == 5
    for b in blocks:
        assert torch.all(b.conv2.norm.weight == 0) and torch.all(b.conv2.norm.bias == 0)
        assert torch.all(b.conv1.norm.weight == 1)


@pytest.mark.parametrize("spec", [TINY3D, TINY_RES], ids=["plain", "resenc"])
def test_channels_last_is_invisible_to_callers(spec: NetworkSpec) -> None:
    torch.manual_seed(0)
    ref = networks.build(spec, in_channels=1, num_outputs=3)
    with torch.no_grad():
        for name, p in ref.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5)
    cl = networks.build(spec, in_channels=1, num_outputs=3, channels_last=True)
    cl.load_state_dict(ref.state_dict())
    x = torch.randn(2, 1, 8, 8, 8)
    out_ref, out_cl = ref(x), cl(x)
    for a, b in zip(out_ref, out_cl):
        assert b.is_contiguous()
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-4)
    sum(o.square().mean() for o in out_ref).backward()
    sum(o.square().mean() for o in out_cl).backward()
    for (name, p), q in zip(ref.named_parameters(), cl.parameters()):
        torch.testing.assert_close(q.grad, p.grad, rtol=1e-3, atol=1e-4, msg=name)


@pytest.mark.slow
def test_traces_under_torch_compile_without_graph_breaks() -> None:
    net = networks.build(TINY_RES, in_channels=1, num_outputs=2)
    x = torch.randn(1, 1, 8, 8, 8)
    expected = net(x)
    compiled = torch.compile(net, backend="aot_eager", fullgraph=True)
    for a, b in zip(compiled(x), expected):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-4)


def test_autocast_forward_and_backward() -> None:
    net = networks.build(TINY3D, in_channels=1, num_outputs=2)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        outs = net(torch.randn(1, 1, 8, 8, 8))
    assert outs[0].dtype == torch.bfloat16
    outs[0].float().mean().backward()
    assert all(p.grad is not None for p in net.decoder.seg_layers[-1].parameters())  # full-resolution head
