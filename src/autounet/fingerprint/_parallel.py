"""Ordered parallel map over cases in worker processes, with an optional progress bar."""

from __future__ import annotations

import multiprocessing
import sys
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import TypeVar

from autounet.errors import AutounetError

T = TypeVar("T")
R = TypeVar("R")


def map_ordered(fn: Callable[[T], R], items: Sequence[T], *, workers: int, progress: bool,
                desc: str, window: int = 4) -> Iterator[R]:
    """Yield ``fn(item)`` in input order, in ``workers`` spawned processes (in-process when ``workers <= 1``).

    At most ``window * workers`` tasks are in flight, so finished results never pile up in memory.

    Raises:
        AutounetError: a worker process died (usually out of memory).
    """
    from tqdm import tqdm  # noqa: PLC0415 - only when used

    bar = tqdm(total=len(items), desc=desc, disable=not progress, file=sys.stderr, leave=False)
    try:
        if workers <= 1 or len(items) <= 1:
            for item in items:
                yield fn(item)
                bar.update()
            return
        context = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=min(workers, len(items)), mp_context=context) as pool:
            try:
                pending: deque[Future[R]] = deque()
                for item in items:  # at most window x workers results wait in memory, whatever the case count
                    pending.append(pool.submit(fn, item))
                    if len(pending) >= window * workers:
                        yield pending.popleft().result()
                        bar.update()
                while pending:
                    yield pending.popleft().result()
                    bar.update()
            except BrokenProcessPool as exc:
                msg = (f"{desc}: a worker process died (usually out of memory). Retry with fewer workers "
                       f"(-j {max(1, workers // 2)}).")
                raise AutounetError(msg) from exc
    finally:
        bar.close()
