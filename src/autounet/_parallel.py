"""Parallel maps over cases in spawned worker processes, with an optional progress bar.

One place for the process pools of fingerprinting, preprocessing, evaluation, post-processing and ensembling.
Each task is one case; ``workers <= 1`` runs in this process (no start-up cost; also what tests use). Workers are
started with ``spawn`` so that a parent already holding CUDA or OpenMP threads (the training pipeline) cannot
deadlock them. A dead worker (usually out of memory) becomes an :class:`AutounetError` naming the step.
"""

from __future__ import annotations

import multiprocessing
import sys
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from autounet.errors import AutounetError

T = TypeVar("T")
R = TypeVar("R")


def _broken(desc: str, workers: int, hint: str) -> AutounetError:
    return AutounetError(f"{desc}: a worker process died (usually out of memory). {hint}Retry with fewer workers "
                         f"(-j {max(1, workers // 2)}).")


def _bar(items: Sequence[object], desc: str, progress: bool) -> Any:
    from tqdm import tqdm  # noqa: PLC0415 - only when used

    return tqdm(total=len(items), desc=desc, disable=not progress, file=sys.stderr, leave=False, unit="case")


def _pool(workers: int, items: Sequence[object]) -> ProcessPoolExecutor:
    return ProcessPoolExecutor(max_workers=min(workers, len(items)), mp_context=multiprocessing.get_context("spawn"))


def _serial(fn: Callable[[T], R], items: Sequence[T], bar: Any) -> Iterator[R]:
    for item in items:
        yield fn(item)
        bar.update()


def map_ordered(fn: Callable[[T], R], items: Sequence[T], *, workers: int, progress: bool = False,
                desc: str = "", window: int = 4) -> Iterator[R]:
    """Yield ``fn(item)`` in input order, in ``workers`` processes (``fn`` must be picklable).

    At most ``window * workers`` tasks are in flight, so finished results never pile up in memory.

    Raises:
        AutounetError: a worker process died.
    """
    with _bar(items, desc, progress) as bar:
        if workers <= 1 or len(items) <= 1:
            yield from _serial(fn, items, bar)
            return
        with _pool(workers, items) as pool:
            try:
                pending: deque[Future[R]] = deque()
                for item in items:
                    pending.append(pool.submit(fn, item))
                    if len(pending) >= window * workers:
                        yield pending.popleft().result()
                        bar.update()
                while pending:
                    yield pending.popleft().result()
                    bar.update()
            except BrokenProcessPool as exc:
                raise _broken(desc, workers, "") from exc


def map_cases(fn: Callable[[T], R], items: Sequence[T], *, workers: int = 1, progress: bool = False,
              desc: str = "") -> list[R]:
    """``[fn(item) for item in items]``, in ``workers`` processes when ``workers > 1``."""
    return list(map_ordered(fn, items, workers=workers, progress=progress, desc=desc))


def map_as_completed(fn: Callable[[T], R], items: Sequence[T], *, workers: int, progress: bool = False,
                     desc: str = "", on_failure: str = "") -> Iterator[R]:
    """Yield ``fn(item)`` as each finishes (any order); unstarted tasks are cancelled when the caller stops.

    ``on_failure`` is put in the message of a dead worker (e.g. what was kept).

    Raises:
        AutounetError: a worker process died.
    """
    with _bar(items, desc, progress) as bar:
        if workers <= 1 or len(items) <= 1:
            yield from _serial(fn, items, bar)
            return
        with _pool(workers, items) as pool:
            pending: set[Future[R]] = {pool.submit(fn, item) for item in items}
            try:
                while pending:
                    done, pending = wait(pending, return_when=FIRST_COMPLETED)
                    for future in done:
                        yield future.result()
                        bar.update()
            except BrokenProcessPool as exc:
                raise _broken(desc, workers, on_failure) from exc
            finally:
                for future in pending:
                    future.cancel()
