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
