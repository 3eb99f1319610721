"""Order-preserving map over cases in worker processes, with an optional progress bar.

Used by evaluation, post-processing and ensembling: each task is one case (read, compute, maybe write), so work
is split by case and results come back in task order. ``workers <= 1`` runs in this process (no start-up cost;
also what tests use). Worker processes are started with ``spawn`` so that a parent that already holds CUDA or
OpenMP threads (the training pipeline) cannot deadlock them.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

from tqdm.auto import tqdm

T = TypeVar("T")
R = TypeVar("R")


def map_cases(fn: Callable[[T], R], tasks: Sequence[T], *, workers: int = 1, progress: bool = False,
              desc: str = "") -> list[R]:
    """``[fn(t) for t in tasks]``, in ``workers`` processes when ``workers > 1``; ``fn`` must be picklable."""
    bar = tqdm(total=len(tasks), desc=desc, disable=not progress, unit="case", leave=False)
    try:
        if workers <= 1 or len(tasks) <= 1:
            out = []
            for task in tasks:
                out.append(fn(task))
                bar.update()
            return out
        ctx = multiprocessing.get_context("spawn")
        with ProcessPoolExecutor(max_workers=min(workers, len(tasks)), mp_context=ctx) as pool:
            chunk = max(1, len(tasks) // (8 * workers))
            results = []
            for result in pool.map(fn, tasks, chunksize=chunk):
                results.append(result)
                bar.update()
            return results
    finally:
        bar.close()
