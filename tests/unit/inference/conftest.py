"""Factories for the inference tests: random-weight model folders of the tiny plans."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from autounet.inference.testing import tiny_dataset, tiny_plans, write_random_model
from autounet.schemas.dataset import DatasetSpec


@pytest.fixture
def make_model(tmp_path: Path):
    """``make_model(configuration, folds=(0,), **kw) -> model folder`` with random weights under tmp_path."""

    def make(configuration: str = "3d_fullres", *, folds=(0,), channels: int = 1, transpose=(0, 1, 2),
             dataset: DatasetSpec | None = None, seed: int = 0, **kw: Any) -> Path:
        plans = tiny_plans(channels=channels, transpose=transpose)
        return write_random_model(tmp_path / "results" / "Dataset900_Tiny", plans,
                                  dataset or tiny_dataset(channels=channels), configuration, folds=folds,
                                  seed=seed, **kw)

    return make
