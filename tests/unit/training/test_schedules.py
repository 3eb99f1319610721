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
