"""Shared test fixtures: paths to the real datasets beside the repository, temporary workspaces, RNGs."""

from __future__ import annotations

import zlib
from pathlib import Path

import numpy as np
import pytest

from autounet.workspace import Workspace

REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_DATASETS = (REPO_ROOT.parent / "shared" / "datasets").resolve()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--test-device", default="cuda", help="device of the GPU tests (-m gpu); cpu for a smoke run")


@pytest.fixture(scope="session")
def shared_datasets() -> Path:
    """``../shared/datasets`` beside the repository (read-only); tests using it are skipped when it is absent."""
    if not SHARED_DATASETS.is_dir():
        pytest.skip(f"real datasets not found at {SHARED_DATASETS}")
    return SHARED_DATASETS


@pytest.fixture
def tmp_workspace(tmp_path: Path) -> Workspace:
    """A fresh, empty workspace under the test's temporary folder."""
    return Workspace.at(tmp_path / "ws").ensure()


@pytest.fixture
def rng(request: pytest.FixtureRequest) -> np.random.Generator:
    """A generator seeded per test (stable across runs)."""
    return np.random.default_rng(zlib.crc32(request.node.nodeid.encode()))


@pytest.fixture(scope="session")
def dask_client():
    """A local Dask cluster of 2 single-threaded worker processes (one ``GPU`` resource each), shared by the tests."""
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None,
                                       resources={"GPU": 1})
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()
