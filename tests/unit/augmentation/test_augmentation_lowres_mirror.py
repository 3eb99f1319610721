"""Simulated low resolution (against per-channel interpolate and NumPy) and mirroring (against np.flip)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from autounet.augmentation import lowres, mirror
from autounet.augmentation.config import LowResConfig, MirrorConfig


def per_channel_interpolate(x: torch.Tensor, zoom: list[float]) -> torch.Tensor:
    """The reference's way: nearest-exact down to round(n * zoom), (bi/tri)linear back up."""
    shape = x.shape
    small = [round(n * z) for n, z in zip(shape, zoom)]
    mode = {1: "linear", 2: "bilinear", 3: "trilinear"}[x.ndim]
    down = F.interpolate(x[None, None], small, mode="nearest-exact")
    return F.interpolate(down, list(shape), mode=mode, align_corners=False)[0, 0]


def numpy_lowres_axis(x: np.ndarray, m: int, axis: int) -> np.ndarray:
    """Independent NumPy version along one axis: nearest-exact n -> m, then linear m -> n (half-pixel centres)."""
    n = x.shape[axis]
    src_down = np.minimum(np.floor((np.arange(m) + 0.5) * n / m).astype(int), n - 1)
    small = np.take(x, src_down, axis=axis)
    pos = np.clip((np.arange(n) + 0.5) * m / n - 0.5, 0, None)
    i0 = np.floor(pos).astype(int)
    i1 = np.minimum(i0 + 1, m - 1)
    w = pos - i0
    shape = [1] * x.ndim
    shape[axis] = n
    return np.take(small, i0, axis=axis) * (1 - w.reshape(shape)) + np.take(small, i1, axis=axis) * w.reshape(shape)


@pytest.mark.parametrize("shape", [(40, 56, 40), (13, 17, 11), (56, 40)])
def test_lowres_matches_interpolate_per_channel(rng: np.random.Generator, shape: tuple[int, ...]) -> None:
    img = torch.from_numpy(rng.normal(size=(2, 3, *shape)).astype(np.float32))
    zoom = np.array([[0.5, 0.77, 0.93], [0.61, 1.0, 0.5]])
    p = lowres.LowResParams(apply=torch.tensor([True, True]),
                            channels=torch.tensor([[True, True, False], [True, True, True]]),
                            zoom=torch.from_numpy(np.repeat(zoom[:, :, None], len(shape), axis=2)))
    out = lowres.apply(img, p)
    for b in range(2):
        for c in range(3):
            if not p.channels[b, c]:
                assert torch.equal(out[b, c], img[b, c])
                continue
            expected = per_channel_interpolate(img[b, c], [zoom[b, c]] * len(shape))
            torch.testing.assert_close(out[b, c], expected, atol=1e-5, rtol=1e-5)
            ref = img[b, c].numpy().astype(np.float64)
            for axis, n in enumerate(shape):
                ref = numpy_lowres_axis(ref, max(1, round(n * zoom[b, c])), axis)
            np.testing.assert_allclose(out[b, c].numpy(), ref, atol=1e-5)


def test_zoom_one_is_identity_and_ignored_axes_keep_their_resolution(rng: np.random.Generator) -> None:
    img = torch.from_numpy(rng.normal(size=(1, 1, 6, 20, 20)).astype(np.float32))
    ones = lowres.LowResParams(apply=torch.tensor([True]), channels=torch.tensor([[True]]),
                               zoom=torch.ones(1, 1, 3, dtype=torch.float64))
    assert torch.equal(lowres.apply(img, ones), img)
    p = lowres.make_params(LowResConfig(p=1.0, p_per_channel=1.0), 1, 1, 3, torch.Generator().manual_seed(0),
                           ignore_axes=(0,))
    assert p.zoom[0, 0, 0] == 1.0 and p.zoom[0, 0, 1] == p.zoom[0, 0, 2] < 1.0
    out = lowres.apply(img, p)
    expected = torch.stack([per_channel_interpolate(img[0, 0, z], p.zoom[0, 0, 1:].tolist()) for z in range(6)])
    torch.testing.assert_close(out[0, 0], expected, atol=1e-5, rtol=1e-5)


def test_lowres_draws() -> None:
    p = lowres.make_params(LowResConfig(), 20000, 2, 3, torch.Generator().manual_seed(4))
    assert abs(p.apply.double().mean().item() - 0.25) < 0.016
    assert abs(p.channels.double().mean().item() - 0.5) < 0.01
    assert p.zoom.min() >= 0.5 and p.zoom.max() <= 1.0
    assert (p.zoom[..., 0] == p.zoom[..., 2]).all()  # one zoom for all axes of a channel
    assert (p.zoom[:, 0, 0] != p.zoom[:, 1, 0]).all()  # but per channel


def test_mirror_equals_np_flip(rng: np.random.Generator) -> None:
    x = rng.normal(size=(4, 2, 5, 6, 7)).astype(np.float32)
    flips = torch.tensor([[True, False, False], [False, True, True], [False, False, False], [True, True, True]])
    out = mirror.apply(torch.from_numpy(x), mirror.MirrorParams(flip=flips)).numpy()
    for b in range(4):
        axes = tuple(a + 1 for a in range(3) if flips[b, a])
        np.testing.assert_array_equal(out[b], np.flip(x[b], axis=axes) if axes else x[b])


def test_mirror_draws_only_allowed_axes() -> None:
    p = mirror.make_params(MirrorConfig(), 40000, ndim=3, axes=(0, 2), generator=torch.Generator().manual_seed(0))
    rates = p.flip.double().mean(dim=0)
    assert abs(rates[0].item() - 0.5) < 0.013 and rates[1].item() == 0 and abs(rates[2].item() - 0.5) < 0.013
    both = (p.flip[:, 0] & p.flip[:, 2]).double().mean().item()
    assert abs(both - 0.25) < 0.012  # axes independent
