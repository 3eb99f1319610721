"""Fixtures of the dataset tests: tiny synthetic raw datasets in temporary folders."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from autounet.testing import make_synthetic_dataset


@pytest.fixture
def make_dataset(tmp_path: Path) -> Callable[..., Path]:
    """Factory: ``make_dataset(n_cases=3, n_channels=1, name="Dataset001_Tiny")`` -> a clean tiny raw dataset."""

    def make(n_cases: int = 3, n_channels: int = 1, name: str = "Dataset001_Tiny") -> Path:
        return make_synthetic_dataset(tmp_path / "raw" / name, n_cases=n_cases, shape=(6, 16, 16),
                                      spacing=(2.0, 1.0, 1.0), n_channels=n_channels, seed=1)

    return make
