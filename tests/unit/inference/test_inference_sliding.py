"""Batched sliding window == a direct, unbatched implementation of the same tiles, Gaussian, mirroring and folds."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch
from scipy.ndimage import gaussian_filter
from torch import nn

from autounet.errors import UsageError
from autounet.inference.sliding import (
    SlidingWindowOptions,
    mirror_combinations,
    pad_to_patch,
    predict_sliding_window,
    tile_grid,
)

CPU = torch.device("cpu")


def tiny_net(in_ch: int, out_ch: int, ndim: int = 3, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    conv = nn.Conv3d if ndim == 3 else nn.Conv2d
    net = nn.Sequential(conv(in_ch, 6, 3, padding=1), nn.LeakyReLU(0.01), conv(6, out_ch, 3, padding=1))
    return net.eval()


# ---- an independent, deliberately plain implementation -------------------------------------------------------
def _steps(size: int, patch: int, step: float) -> list[int]:
    n = math.ceil((size - patch) / (patch * step)) + 1
    if n == 1:
        return [0]
    return [int(np.round((size - patch) / (n - 1) * k)) for k in range(n)]


def _gaussian(patch: tuple[int, ...]) -> np.ndarray:
    tmp = np.zeros(patch)
    tmp[tuple(p // 2 for p in patch)] = 1
    g = gaussian_filter(tmp, [p / 8 for p in patch], 0, mode="constant", cval=0)
    g = g / g.max() * 10
    g[g == 0] = g[g > 0].min()
    return g


def direct_sliding_window(nets, data: np.ndarray, patch: tuple[int, ...], step: float, mirror_axes) -> np.ndarray:
    """One tile, one mirror, one fold at a time, float64 accumulation (the reference's algorithm, written out)."""
    _, *spatial = data.shape
    pads = [(0, 0)] + [((max(p - s, 0)) // 2, max(p - s, 0) - max(p - s, 0) // 2) for s, p in zip(spatial, patch)]
    padded = np.pad(data, pads)
    shape = padded.shape[1:]
    g = _gaussian(patch)
    folds = []
    for net in nets:
        out_ch = net[-1].out_channels
        acc = np.zeros((out_ch, *shape))
        wsum = np.zeros(shape)
        for corner in itertools.product(*[_steps(s, p, step) for s, p in zip(shape, patch)]):
            sl = tuple(slice(a, a + p) for a, p in zip(corner, patch))
            tile = torch.from_numpy(padded[(slice(None), *sl)][None].astype(np.float32))
            preds = []
            for k in range(len(mirror_axes) + 1):
                for axes in itertools.combinations(mirror_axes, k):
                    dims = [a + 2 for a in axes]
                    x = torch.flip(tile, dims) if dims else tile
                    with torch.no_grad():
                        y = net(x)
                    preds.append((torch.flip(y, dims) if dims else y)[0].double().numpy())
            acc[(slice(None), *sl)] += np.mean(preds, axis=0) * g
            wsum[sl] += g
        folds.append(acc / wsum)
    result = np.mean(folds, axis=0)
    crop = tuple(slice(b, b + s) for (b, _), s in zip(pads[1:], spatial))
    return result[(slice(None), *crop)]


@pytest.mark.parametrize(("shape", "patch", "mirror", "tile_batch"), [
    ((2, 30, 27, 21), (16, 12, 16), (0, 1, 2), 5),
    ((2, 30, 27, 21), (16, 12, 16), (), 3),
    ((1, 10, 9, 40), (16, 12, 16), (1, 2), 8),   # smaller than the patch on two axes: padded
    ((1, 24, 24, 24), (24, 24, 24), (0,), 1),
])
def test_batched_equals_direct_implementation(rng, shape, patch, mirror, tile_batch):
    data = rng.normal(size=shape).astype(np.float32)
    nets = [tiny_net(shape[0], 3, seed=s) for s in (0, 1)]
    opts = SlidingWindowOptions(mirror_axes=mirror, tile_batch=tile_batch)
    got = predict_sliding_window(nets, data, patch_size=patch, num_outputs=3, options=opts, device=CPU).numpy()
    expected = direct_sliding_window(nets, data, patch, 0.5, mirror)
    assert got.shape == expected.shape == (3, *shape[1:])
    np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-4)
    agree = np.mean(got.argmax(0) == expected.argmax(0))
    assert agree >= 0.9999


def test_2d_configuration_predicts_each_slice(rng):
    data = rng.normal(size=(1, 3, 20, 17)).astype(np.float32)
    nets = [tiny_net(1, 2, ndim=2)]
    opts = SlidingWindowOptions(mirror_axes=(0, 1), tile_batch=4)
    got = predict_sliding_window(nets, data, patch_size=(12, 12), num_outputs=2, options=opts, device=CPU).numpy()
    # direct: each slice on its own with the 2D algorithm
    for z in range(3):
        expected = direct_sliding_window(nets, data[:, z], (12, 12), 0.5, (0, 1))
        np.testing.assert_allclose(got[:, z], expected, rtol=1e-4, atol=1e-4)


def test_mirroring_averages_all_flip_combinations(rng):
    data = rng.normal(size=(1, 8, 8, 8)).astype(np.float32)
    net = tiny_net(1, 2)
    opts = SlidingWindowOptions(mirror_axes=(0, 2), tile_batch=2)
    got = predict_sliding_window([net], data, patch_size=(8, 8, 8), num_outputs=2, options=opts, device=CPU)
    x = torch.from_numpy(data)[None]
    with torch.no_grad():
        expected = sum(torch.flip(net(torch.flip(x, d)), d) if d else net(x)
                       for d in ([], [2], [4], [2, 4])) / 4
    np.testing.assert_allclose(got.numpy(), expected[0].numpy(), rtol=1e-5, atol=1e-5)
    plain = predict_sliding_window([net], data, patch_size=(8, 8, 8), num_outputs=2,
                                   options=SlidingWindowOptions(), device=CPU)
    assert not torch.allclose(plain, got, atol=1e-4)  # the network is not flip-invariant: TTA changes the logits


def test_fold_average_is_the_mean_of_single_fold_predictions(rng):
    data = rng.normal(size=(1, 20, 20, 20)).astype(np.float32)
    nets = [tiny_net(1, 2, seed=s) for s in range(3)]
    opts = SlidingWindowOptions(mirror_axes=(1,), tile_batch=4)
    both = predict_sliding_window(nets, data, patch_size=(12, 12, 12), num_outputs=2, options=opts, device=CPU)
    singles = [predict_sliding_window([n], data, patch_size=(12, 12, 12), num_outputs=2, options=opts, device=CPU)
               for n in nets]
    np.testing.assert_allclose(both.numpy(), torch.stack(singles).mean(0).numpy(), rtol=1e-5, atol=1e-5)


def test_constant_network_gives_the_constant(rng):
    class Const(nn.Module):
        def forward(self, x):
            return torch.ones(x.shape[0], 2, *x.shape[2:]) * torch.tensor([1.5, -2.0])[None, :, None, None, None]

    data = rng.normal(size=(1, 23, 31, 19)).astype(np.float32)
    got = predict_sliding_window([Const()], data, patch_size=(8, 8, 8), num_outputs=2,
                                 options=SlidingWindowOptions(mirror_axes=(0, 1, 2)), device=CPU)
    np.testing.assert_allclose(got[0].numpy(), 1.5, rtol=1e-6)
    np.testing.assert_allclose(got[1].numpy(), -2.0, rtol=1e-6)


def test_tile_positions_match_the_reference_rule():
    grid = tile_grid((110, 64, 70), (64, 64, 64), 0.5)
    assert sorted(set(grid.starts[:, 0])) == [0, 23, 46]
    assert sorted(set(grid.starts[:, 1])) == [0]
    assert sorted(set(grid.starts[:, 2])) == [0, 6]
    assert len(grid) == 6


def test_mirror_combinations_and_padding():
    assert mirror_combinations((0, 1, 2)) == ((), (0,), (1,), (2,), (0, 1), (0, 2), (1, 2), (0, 1, 2))
    assert len(mirror_combinations((0, 1))) == 4 and mirror_combinations(()) == ((),)
    x = torch.ones(1, 3, 10, 5)
    padded, revert = pad_to_patch(x, (4, 7))
    assert padded.shape == (1, 3, 10, 7)
    assert padded[0, 0, 0, 0] == 0 and padded[0, 0, 0, 1] == 1 and padded[0, 0, 0, 6] == 0
    assert torch.equal(padded[(slice(None), *revert)], x)


def test_bad_options_raise_usage_errors():
    with pytest.raises(UsageError, match="step"):
        SlidingWindowOptions(step=0)
    with pytest.raises(UsageError, match="tile batch"):
        SlidingWindowOptions(tile_batch=0)
    with pytest.raises(UsageError, match="precision"):
        SlidingWindowOptions(precision="int8")


def test_cpu_tile_batch_follows_the_activation_estimate():
    from autounet.inference.sliding import choose_tile_batch

    small = tiny_net(1, 2)  # 6 features on 16^3: many tiles per call
    assert choose_tile_batch(small, (1, 16, 16, 16), device=CPU, n_mirrors=8) == 8
    wide = nn.Sequential(nn.Conv3d(1, 320, 3, padding=1))  # 320 features on 256^3: one tile per call
    assert choose_tile_batch(wide, (1, 256, 256, 256), device=CPU) == 1


def test_work_units_cover_every_tile_fold_and_mirror_once():
    from autounet.inference.sliding import plan_units

    for n_tiles, n_nets, n_mirrors, chunk, streams in [(5, 2, 8, 8, 1), (1, 1, 8, 8, 2), (1, 1, 8, 8, 4),
                                                        (7, 1, 1, 3, 2), (3, 3, 4, 2, 2)]:
        units = plan_units(n_tiles, n_nets, n_mirrors, chunk=chunk, streams=streams)
        seen = sorted((t, u.network, m) for u in units for t in u.tiles for m in u.mirrors)
        assert seen == sorted((t, f, m) for t in range(n_tiles) for f in range(n_nets) for m in range(n_mirrors))
        firsts = sorted(t for u in units if u.first for t in u.tiles)
        assert firsts == list(range(n_tiles))  # tile weights added exactly once
        assert all(len(u.tiles) * len(u.mirrors) <= max(chunk, 1) for u in units)
    # one tile with 8 mirrors and 2 streams: two calls of 4 mirrors, so both streams work
    assert [len(u.mirrors) for u in plan_units(1, 1, 8, chunk=8, streams=2)] == [4, 4]


def test_cpu_streams_give_the_same_logits_and_restore_threads(rng):
    data = rng.normal(size=(1, 30, 26, 20)).astype(np.float32)
    nets = [tiny_net(1, 3, seed=s) for s in (0, 1)]
    threads = torch.get_num_threads()
    results = [predict_sliding_window(nets, data, patch_size=(12, 12, 12), num_outputs=3, device=CPU,
                                      options=SlidingWindowOptions(mirror_axes=(0, 1), tile_batch=4,
                                                                   cpu_streams=s)).numpy()
               for s in (1, 3)]
    np.testing.assert_allclose(results[0], results[1], rtol=1e-5, atol=1e-5)
    assert torch.get_num_threads() == threads


class _NumpyNet:
    """A torch network behind a NumPy interface, as the ONNX Runtime / OpenVINO backends present theirs."""

    def __init__(self, net: nn.Module) -> None:
        self.net = net
        self.calls: list[tuple[int, ...]] = []

    def __call__(self, x: np.ndarray) -> np.ndarray:
        assert isinstance(x, np.ndarray) and x.dtype == np.float32
        self.calls.append(x.shape)
        with torch.no_grad():
            return self.net(torch.from_numpy(np.ascontiguousarray(x))).numpy()


@pytest.mark.parametrize(("shape", "patch", "mirror", "folds"), [
    ((2, 30, 27, 21), (16, 12, 16), (0, 1, 2), 2),
    ((1, 10, 9, 40), (16, 12, 16), (), 1),          # padded
    ((1, 3, 20, 17), (12, 12), (0, 1), 2),          # 2D configuration
])
def test_numpy_arrays_give_the_torch_result(rng, shape, patch, mirror, folds):
    from autounet.inference.arrays import HOST

    data = rng.normal(size=shape).astype(np.float32)
    nets = [tiny_net(shape[0], 3, ndim=len(patch), seed=s) for s in range(folds)]
    wrapped = [_NumpyNet(n) for n in nets]
    opts = SlidingWindowOptions(mirror_axes=mirror, tile_batch=4)
    expected = predict_sliding_window(nets, data, patch_size=patch, num_outputs=3, options=opts, device=CPU)
    got = predict_sliding_window(wrapped, data, patch_size=patch, num_outputs=3, options=opts, device=HOST)
    assert isinstance(got, np.ndarray) and got.dtype == np.float32
    np.testing.assert_allclose(got, expected.numpy(), rtol=1e-5, atol=1e-5)
    assert all(len(c) == len(patch) + 2 and c[0] <= 4 for w in wrapped for c in w.calls)


def test_numpy_path_pads_without_torch(rng):
    data = rng.normal(size=(1, 5, 7, 9)).astype(np.float32)
    padded, revert = pad_to_patch(data, (8, 8, 8))
    assert isinstance(padded, np.ndarray) and padded.shape == (1, 8, 8, 9)
    np.testing.assert_array_equal(padded[(slice(None), *revert)], data)
    outside = np.ones(padded.shape[1:], dtype=bool)
    outside[revert] = False
    assert not np.any(padded[:, outside])  # zeros around
