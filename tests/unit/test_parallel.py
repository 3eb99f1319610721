"""The shared per-case process pools: order, completeness, and a dead worker as a clear error."""

from __future__ import annotations

import math
import os

import pytest

from autounet._parallel import map_as_completed, map_cases, map_ordered
from autounet.errors import AutounetError

ITEMS = [float(i) for i in range(9)]


@pytest.mark.parametrize("workers", [1, 2])
def test_ordered_maps_keep_input_order(workers: int) -> None:
    expected = [math.sqrt(x) for x in ITEMS]
    assert list(map_ordered(math.sqrt, ITEMS, workers=workers, window=1)) == expected
    assert map_cases(math.sqrt, ITEMS, workers=workers) == expected


@pytest.mark.parametrize("workers", [1, 2])
def test_as_completed_yields_every_result_once(workers: int) -> None:
    assert sorted(map_as_completed(math.sqrt, ITEMS, workers=workers)) == [math.sqrt(x) for x in ITEMS]


def test_a_dead_worker_is_a_clear_error() -> None:
    with pytest.raises(AutounetError, match=r"step: a worker process died .*kept\. Retry with fewer workers \(-j 1\)"):
        list(map_as_completed(os._exit, [3, 3], workers=2, desc="step", on_failure="Finished cases are kept. "))
    with pytest.raises(AutounetError, match="other: a worker process died"):
        list(map_ordered(os._exit, [3, 3], workers=2, desc="other"))


def _fail_on_three(x: float) -> float:
    if x == 3:
        raise ValueError("three")
    return x


def test_an_installed_executor_runs_the_tasks() -> None:
    from concurrent.futures import ThreadPoolExecutor

    from autounet._parallel import current_executor, using

    with ThreadPoolExecutor(2) as pool, using(pool):
        assert current_executor() is pool
        assert map_cases(math.sqrt, ITEMS, workers=1) == [math.sqrt(x) for x in ITEMS]  # workers ignored
        assert sorted(map_as_completed(math.sqrt, ITEMS, workers=1)) == [math.sqrt(x) for x in ITEMS]
    assert current_executor() is None


@pytest.mark.parametrize("workers", [1, 2])
def test_outcomes_keep_going_after_a_failed_task(workers: int) -> None:
    from autounet._parallel import iter_outcomes

    outcomes = dict(iter_outcomes(_fail_on_three, ITEMS, workers=workers))
    assert set(outcomes) == set(ITEMS)
    assert isinstance(outcomes[3.0], ValueError)
    assert all(outcomes[x] == x for x in ITEMS if x != 3.0)


def _variable(name: str) -> str | None:
    return os.environ.get(name)


def test_workers_are_single_threaded() -> None:
    from autounet._parallel import WORKER_THREAD_VARIABLES

    values = map_cases(_variable, list(WORKER_THREAD_VARIABLES), workers=2)
    assert values == ["1"] * len(WORKER_THREAD_VARIABLES)
