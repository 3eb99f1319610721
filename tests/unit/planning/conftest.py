"""Fixtures for planning tests: synthetic fingerprints and dataset.json dicts."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from _planning_data import make_fingerprint, make_spec

from autounet.schemas.fingerprint import Fingerprint


@pytest.fixture
def hippocampus_like() -> tuple[Fingerprint, dict]:
    """facts §3.15: 260 cases at 1 mm, shape (36, 50, 35), 3 label keys."""
    return make_fingerprint([(1, 1, 1)] * 260, [(36, 50, 35)] * 260), make_spec(["MRI"], 3, 260)


@pytest.fixture
def lits_like() -> tuple[Fingerprint, dict]:
    """facts §3.15: 131 CT cases (1.0, 0.77, 0.77), (432, 512, 512)."""
    return make_fingerprint([(1.0, 0.77, 0.77)] * 131, [(432, 512, 512)] * 131), make_spec(["CT"], 3, 131)


@pytest.fixture
def fingerprint_factory() -> Callable[..., Fingerprint]:
    return make_fingerprint
