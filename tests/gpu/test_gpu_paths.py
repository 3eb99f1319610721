"""GPU tests (``-m gpu``): the CUDA paths agree with the CPU and with fp32.

They run on the device named by ``--test-device`` (default ``cuda``; skipped when CUDA is absent). The CPU smoke
run of ``benchmarks/gpu_suite.py`` runs them once with ``--test-device cpu`` so that their code is exercised on
every machine; on the CPU the comparisons are CPU against CPU and trivially close, on a GPU they test the GPU.
"""

from __future__ import annotations

import dataclasses
import os
import tempfile
from pathlib import Path

import numpy as np
import pytest
import torch

from autounet import augmentation, networks
from autounet.inference.sliding import SlidingWindowOptions, predict_sliding_window
from autounet.labels import LabelSpec
from autounet.schemas.dataset import DatasetSpec
from autounet.schemas.plans import NetworkSpec
from autounet.training import losses

pytestmark = pytest.mark.gpu
PATCH = (16, 32, 24)
SPEC = NetworkSpec(name="plain_unet", features_per_stage=(8, 16, 32), kernel_sizes=((3, 3, 3),) * 3,
                   strides=((1, 1, 1), (2, 2, 2), (2, 2, 2)), blocks_per_stage=(2, 2, 2),
                   convs_per_stage_decoder=(2, 2))
TRANSFORMS = ("rotation", "scaling", "noise", "blur", "brightness", "contrast", "lowres", "gamma_inverted", "gamma",
              "mirror")


@pytest.fixture(scope="module")
def device(request: pytest.FixtureRequest) -> torch.device:
    name = request.config.getoption("--test-device")
    dev = torch.device(name)
    if dev.type == "cuda" and not torch.cuda.is_available():
        pytest.skip("no CUDA device")
    return dev


def _labels() -> LabelSpec:
    spec = DatasetSpec.from_dict({"channel_names": {"0": "MRI"}, "labels": {"background": 0, "a": 1, "b": 2},
                                  "numTraining": 1, "file_ending": ".nii.gz"})
    return LabelSpec.from_dataset_spec(spec)


def _batch(n: int, patch: tuple[int, ...] = PATCH, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    seg = torch.zeros(n, 1, *patch, dtype=torch.int16)
    seg[..., 4:12, 8:24, 6:18] = 1
    seg[..., 6:10, 12:20, 2:8] = 2
    image = torch.randn(n, 1, *patch, generator=g) * 0.5 + seg.float()
    return image, seg


def _network(seed: int = 0, *, deep_supervision: bool = True) -> torch.nn.Module:
    torch.manual_seed(seed)
    return networks.build(SPEC, in_channels=1, num_outputs=3, deep_supervision=deep_supervision)


def _loss(*, batch_dice: bool = True, ddp: bool = False) -> torch.nn.Module:
    aug = augmentation.build("default", patch_size=PATCH, deep_supervision_strides=SPEC.strides)
    return losses.build_loss(_labels(), batch_dice=batch_dice, deep_supervision_scales=aug.deep_supervision_scales,
                             ddp=ddp)


def _targets(seg: torch.Tensor) -> list[torch.Tensor]:
    aug = augmentation.build("default", patch_size=PATCH, deep_supervision_strides=SPEC.strides)
    return aug.prepare(torch.zeros_like(seg), seg)[1]  # type: ignore[return-value]


def _grads(net: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.grad.flatten().float() for p in net.parameters() if p.grad is not None])


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_amp_step_is_finite_and_close_to_fp32(device: torch.device, dtype: torch.dtype) -> None:
    if device.type != "cuda" and dtype is torch.float16:
        pytest.skip("fp16 autocast is a CUDA path")
    image, seg = _batch(2)
    x, targets = image.to(device), [t.to(device) for t in _targets(seg)]
    results = []
    for amp in (None, dtype):
        net = _network().to(device)
        with torch.autocast(device.type, dtype=amp or torch.float32, enabled=amp is not None):
            loss = _loss()(net(x), targets)
        loss.backward()
        results.append((float(loss.detach()), _grads(net)))
    (l32, g32), (lamp, gamp) = results
    assert np.isfinite(lamp) and torch.isfinite(gamp).all()
    assert abs(lamp - l32) <= 0.02 * abs(l32) + 1e-3
    cosine = torch.nn.functional.cosine_similarity(g32, gamp, dim=0)
    assert cosine > 0.98, f"AMP gradients deviate from fp32 (cosine {cosine:.4f})"


def test_compiled_network_matches_eager(device: torch.device) -> None:
    net = _network(deep_supervision=False).to(device).eval()
    x = _batch(2)[0].to(device)
    with torch.no_grad():
        eager = net(x)
        compiled = torch.compile(net)(x)
    torch.testing.assert_close(compiled, eager, rtol=1e-3, atol=1e-3)


def _only(name: str) -> augmentation.AugmentationConfig:
    """The default config with every transform off except ``name`` (applied to every sample)."""
    cfg = augmentation.preset("default")
    off = {f.name: dataclasses.replace(getattr(cfg, f.name), p=0.0) for f in dataclasses.fields(cfg)
           if f.name in ("noise", "blur", "brightness", "contrast", "lowres", "gamma_inverted", "gamma")}
    cfg = dataclasses.replace(cfg, **off, spatial=dataclasses.replace(cfg.spatial, p_rotation=0.0, p_scaling=0.0),
                              mirror=dataclasses.replace(cfg.mirror, p_per_axis=0.0))
    if name == "rotation":
        return dataclasses.replace(cfg, spatial=dataclasses.replace(cfg.spatial, p_rotation=1.0))
    if name == "scaling":
        return dataclasses.replace(cfg, spatial=dataclasses.replace(cfg.spatial, p_scaling=1.0))
    if name == "mirror":
        return dataclasses.replace(cfg, mirror=dataclasses.replace(cfg.mirror, p_per_axis=1.0))
    section = getattr(cfg, name)
    extra = {"p_per_channel": 1.0} if hasattr(section, "p_per_channel") else {}
    return dataclasses.replace(cfg, **{name: dataclasses.replace(section, p=1.0, **extra)})


@pytest.mark.parametrize("name", TRANSFORMS)
def test_augmentation_transform_same_on_device_as_cpu(device: torch.device, name: str) -> None:
    aug = augmentation.build(_only(name), patch_size=PATCH)
    image, seg = _batch(4, aug.initial_patch_size, seed=1)
    params = aug.make_params(4, channels=1, generator=torch.Generator().manual_seed(7))
    assert bool(params.applied()[name].all()), f"{name} was not applied: the test would not test it"
    cpu_img, cpu_seg = aug.apply_augmentation(image, seg, params)
    dev_img, dev_seg = aug.apply_augmentation(image.to(device), seg.to(device), params)
    dev_img, dev_seg = dev_img.cpu(), dev_seg.cpu()
    if name == "noise":  # the noise field is drawn on the device: compare its statistics
        for a, b in ((cpu_img - image[..., :PATCH[0], :PATCH[1], :PATCH[2]], dev_img - image[..., :PATCH[0],
                      :PATCH[1], :PATCH[2]]),):
            assert abs(float(a.std()) - float(b.std())) < 0.1 * float(a.std()) + 1e-3
    else:
        torch.testing.assert_close(dev_img, cpu_img, rtol=1e-3, atol=2e-3)
    assert float((dev_seg == cpu_seg).float().mean()) >= 0.999
    assert abs(float(dev_img.mean()) - float(cpu_img.mean())) < 0.02
    assert abs(float(dev_img.std()) - float(cpu_img.std())) < 0.02 * float(cpu_img.std()) + 1e-3


def test_sliding_window_on_device_equals_cpu(device: torch.device) -> None:
    net = _network(deep_supervision=False).eval()
    image = _batch(1, (30, 50, 40), seed=3)[0][0]
    options = SlidingWindowOptions(mirror_axes=(0, 1, 2), precision="fp32", tile_batch=4)
    with torch.inference_mode():
        cpu = predict_sliding_window([net], image, patch_size=PATCH, num_outputs=3, options=options,
                                     device=torch.device("cpu"))
        dev = predict_sliding_window([net.to(device)], image, patch_size=PATCH, num_outputs=3, options=options,
                                     device=device).cpu()
    agree = float((cpu.argmax(0) == dev.argmax(0)).float().mean())
    assert agree >= 0.9999, f"only {agree:.5%} of voxels agree"
    torch.testing.assert_close(dev, cpu, rtol=1e-3, atol=1e-3)


def _ddp_step(rank: int, world: int, store: str, device_name: str, out: str) -> None:
    """One DDP training step on this rank's half of the global batch; rank 0 saves the updated weights."""
    backend = "nccl" if device_name == "cuda" and torch.cuda.device_count() >= world else "gloo"
    torch.distributed.init_process_group(backend, init_method=f"file://{store}", rank=rank, world_size=world)
    try:
        device = torch.device(device_name, rank % max(1, torch.cuda.device_count())) if device_name == "cuda" \
            else torch.device("cpu")
        image, seg = _batch(4)
        part = slice(rank * 4 // world, (rank + 1) * 4 // world)
        net = _network().to(device)
        model = torch.nn.parallel.DistributedDataParallel(
            net, device_ids=[device.index] if device.type == "cuda" else None)
        opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.99, nesterov=True)
        loss = _loss(ddp=True)(model(image[part].to(device)), [t.to(device) for t in _targets(seg[part])])
        loss.backward()
        opt.step()
        if rank == 0:
            torch.save({k: v.cpu() for k, v in net.state_dict().items()}, out)
    finally:
        torch.distributed.destroy_process_group()


def test_data_parallel_step_equals_single_process(device: torch.device, tmp_path: Path) -> None:
    out = tmp_path / "ddp.pt"
    store = Path(tempfile.mkdtemp(dir=tmp_path)) / "store"
    torch.multiprocessing.spawn(_ddp_step, args=(2, str(store), device.type, str(out)), nprocs=2, join=True)
    ddp_weights = torch.load(out, weights_only=True)
    net = _network().to(device)
    before = {k: v.detach().cpu().clone() for k, v in net.state_dict().items()}
    image, seg = _batch(4)
    opt = torch.optim.SGD(net.parameters(), lr=0.01, momentum=0.99, nesterov=True)
    loss = _loss(ddp=True)(net(image.to(device)), [t.to(device) for t in _targets(seg)])
    loss.backward()
    opt.step()
    for key, value in net.state_dict().items():
        if not value.is_floating_point():
            continue
        moved_single = value.cpu() - before[key]
        moved_ddp = ddp_weights[key] - before[key]
        torch.testing.assert_close(moved_ddp, moved_single, rtol=1e-3, atol=1e-6, msg=lambda m, k=key: f"{k}: {m}")
    assert any(float((ddp_weights[k] - before[k]).abs().max()) > 0 for k in before), "the step changed nothing"


def test_environment_is_not_read(device: torch.device) -> None:
    """Guard: the tests above must not depend on a CUDA_VISIBLE_DEVICES set by the suite."""
    assert device.type in ("cpu", "cuda") and "AUTOUNET_TEST_DEVICE" not in os.environ
