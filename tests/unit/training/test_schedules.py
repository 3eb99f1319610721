"""The poly learning-rate schedule."""

from __future__ import annotations

import pytest

from autounet.errors import ConfigError
from autounet.training.schedules import poly_lr


def test_poly_values() -> None:
    assert poly_lr(0, 1000, 1e-2) == pytest.approx(1e-2)
    assert poly_lr(500, 1000, 1e-2) == pytest.approx(1e-2 * 0.5**0.9)
    assert poly_lr(999, 1000, 1e-2) == pytest.approx(1e-2 * 0.001**0.9)
    assert poly_lr(1000, 1000, 1e-2) == 0.0
    values = [poly_lr(e, 10, 1.0) for e in range(11)]
    assert values == sorted(values, reverse=True)


def test_poly_rejects_bad_arguments() -> None:
    with pytest.raises(ConfigError):
        poly_lr(11, 10, 1.0)
    with pytest.raises(ConfigError):
        poly_lr(0, 0, 1.0)


def test_poly_matches_the_reference_schedule_over_a_full_run() -> None:
    """The reference steps PolyLRScheduler with the epoch index at each epoch start: lr(e) = 0.01 (1 - e/1000)^0.9."""
    import numpy as np

    epochs = np.arange(1000)
    expected = 0.01 * (1 - epochs / 1000) ** 0.9
    got = np.array([poly_lr(int(e), 1000, 0.01) for e in epochs])
    np.testing.assert_allclose(got, expected, rtol=1e-15)
    assert got[999] == pytest.approx(1.99e-5, rel=0.01)  # facts §5.1: epoch 999 -> ~1.99e-5
    assert poly_lr(3, 10, 0.1, exponent=2.0) == pytest.approx(0.1 * 0.7 ** 2)
