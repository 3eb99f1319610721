"""Tile positions and the Gaussian importance map, against hand-computed values."""

from __future__ import annotations

import numpy as np
import pytest

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
