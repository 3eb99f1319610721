"""Tile positions and the Gaussian importance map, against hand-computed values and the reference (golden)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from autounet.errors import UsageError
from autounet.sliding_window import compute_steps, gaussian_importance_map, pad_amounts


def test_steps_match_the_worked_example() -> None:
    assert compute_steps([110], [64], 0.5) == [[0, 23, 46]]  # facts §7.2


def test_steps_cover_the_image_flush_at_both_ends() -> None:
    for size, patch, step in [(40, 40, 0.5), (41, 40, 0.5), (200, 56, 0.5), (97, 32, 0.25), (300, 128, 1.0)]:
        (pos,) = compute_steps([size], [patch], step)
        assert pos[0] == 0 and pos[-1] == size - patch
        assert all(b - a <= patch * step + 1e-9 for a, b in zip(pos, pos[1:]))
        assert pos == sorted(set(pos))


def test_multi_axis_and_errors() -> None:
    assert compute_steps([40, 100, 56], [40, 56, 40], 0.5) == [[0], [0, 22, 44], [0, 16]]
    with pytest.raises(UsageError, match="pad it first"):
        compute_steps([30], [40], 0.5)
    with pytest.raises(UsageError, match="step"):
        compute_steps([50], [40], 0.0)


def test_gaussian_map_properties() -> None:
    g = gaussian_importance_map((9, 12, 7))
    assert g.dtype == np.float32 and g.shape == (9, 12, 7)
    assert g.max() == pytest.approx(10.0)
    assert np.unravel_index(np.argmax(g), g.shape) == (4, 6, 3)
    assert (g > 0).all()
    # symmetric around the centre along an odd axis
    np.testing.assert_allclose(g[3], g[5], rtol=1e-6)
    with pytest.raises(ValueError):
        g[0, 0, 0] = 1.0  # cached maps are read-only


def test_pad_amounts() -> None:
    assert pad_amounts([30, 60], [40, 56]) == [(5, 5), (0, 0)]
    assert pad_amounts([31], [40]) == [(4, 5)]


# ---------------------------------------------------------------- against the reference (golden) and as a whole

_GOLDEN = json.loads((Path(__file__).resolve().parents[1] / "data" / "golden" / "networks" /
                      "sliding_window.json").read_text(encoding="utf-8"))


def test_steps_equal_reference_compute_steps_for_sliding_window() -> None:
    for key, expected in _GOLDEN["steps"].items():
        image, patch = (int(v) for v in key.split("/"))
        assert compute_steps([image], [patch], 0.5) == [expected], key


@pytest.mark.parametrize("patch", list(_GOLDEN["gaussian"]))
def test_gaussian_equals_reference_up_to_its_float16_cast(patch: str) -> None:
    ref = _GOLDEN["gaussian"][patch]
    size = tuple(int(p) for p in patch.split("x"))
    g = gaussian_importance_map(size)
    centre = tuple(p // 2 for p in size)
    assert g.max() == pytest.approx(ref["max"]) and g[centre] == pytest.approx(ref["center"])
    # the reference stores float16: compare after the same cast
    np.testing.assert_array_equal(g[(slice(None), *centre[1:])].astype(np.float16).astype(np.float32),
                                  np.asarray(ref["axis0_profile"], dtype=np.float32))
    assert float(g.astype(np.float16).astype(np.float64).sum()) == pytest.approx(ref["sum"], rel=1e-4)
    assert g.min() > 0


def _tiles(shape: tuple[int, ...], patch: tuple[int, ...], step: float) -> list[tuple[slice, ...]]:
    per_axis = compute_steps(shape, patch, step)
    return [tuple(slice(s, s + p) for s, p in zip(starts, patch)) for starts in itertools.product(*per_axis)]


class _ConstantNetwork(torch.nn.Module):
    """A "network" whose logits are ``value`` everywhere (channel k: ``value + k``)."""

    def __init__(self, value: float, num_outputs: int) -> None:
        super().__init__()
        self.value, self.num_outputs = value, num_outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        offsets = torch.arange(self.num_outputs, dtype=x.dtype, device=x.device)
        shape = (x.shape[0], self.num_outputs, *x.shape[2:])
        return (self.value + offsets.view(1, -1, *([1] * (x.ndim - 2)))).expand(shape).contiguous()


@pytest.mark.parametrize(("shape", "patch", "mirror"), [
    ((23, 40, 31), (16, 24, 16), ()),
    ((23, 40, 31), (16, 24, 16), (0, 1, 2)),
    ((3, 9, 70), (8, 32), (0, 1)),      # 2D configuration: slices of the first axis
    ((5, 6, 7), (8, 8, 8), ()),         # smaller than the patch: padded, then cropped back
])
def test_constant_network_reproduces_the_constant(shape: tuple[int, ...], patch: tuple[int, ...],
                                                 mirror: tuple[int, ...]) -> None:
    """The library's Gaussian-weighted tile accumulation (with padding and mirroring) divided by the summed weights
    returns a constant prediction exactly, at the input's shape."""
    from autounet.inference.sliding import SlidingWindowOptions, predict_sliding_window

    data = torch.from_numpy(np.random.default_rng(0).normal(size=(1, *shape)).astype(np.float32))
    options = SlidingWindowOptions(step=0.5, mirror_axes=mirror, tile_batch=4, precision="fp32", cpu_streams=1)
    logits = predict_sliding_window([_ConstantNetwork(3.25, 2)], data, patch_size=patch, num_outputs=2,
                                    options=options, device=torch.device("cpu"))
    assert tuple(logits.shape) == (2, *shape)
    np.testing.assert_allclose(logits[0].numpy(), 3.25, rtol=1e-6)
    np.testing.assert_allclose(logits[1].numpy(), 4.25, rtol=1e-6)


def test_tiles_cover_every_voxel_with_at_most_half_patch_steps() -> None:
    shape, patch = (37, 61, 50), (16, 24, 20)
    count = np.zeros(shape, dtype=int)
    for sl in _tiles(shape, patch, 0.5):
        count[sl] += 1
    assert count.min() >= 1
    for axis, pos in enumerate(compute_steps(shape, patch, 0.5)):
        assert max(np.diff(pos)) <= patch[axis] * 0.5
