"""One execution layer for per-case work: a local process pool by default, or any executor with ``submit``.

Verify, fingerprint, preprocessing, prediction, evaluation, post-processing and ensembling hand their per-case
tasks to the functions here. Each task is one case and returns a small record; outputs are written atomically by
the task itself (so a worker on another machine writes straight into the shared workspace).

Where the tasks run:

* an explicit ``executor=`` (anything with the :class:`concurrent.futures.Executor` shape, e.g. a
  ``dask.distributed.Client``), else the executor installed by :func:`using` (the edge - CLI or API - installs the
  one resolved from ``--cluster``), else
* ``workers > 1``: a local pool of spawned processes (:func:`local_pool`), started per call (no set-up), else
* this process (no start-up cost; what tests use).

Local workers are forked where that is safe (no import cost), else spawned. They end with their parent: each sets
``PR_SET_PDEATHSIG`` (Linux) and runs a watchdog thread that exits when the parent process is gone, so ``kill -9``
of a command leaves no worker behind. They also use one thread for BLAS/OpenMP/torch/blosc2 (the pool provides the
parallelism; more threads per worker only add system time). A dead worker (usually out of memory) becomes an
:class:`AutounetError` naming the step. On Dask a lost worker's task is run again on another worker by the
scheduler; only a task that kills workers repeatedly fails.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool
from typing import Any, TypeVar

from autounet.errors import AutounetError

T = TypeVar("T")
R = TypeVar("R")

#: environment of local worker processes: one thread per library (set before numpy/torch load in the worker)
WORKER_THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
                           "NUMEXPR_NUM_THREADS", "BLOSC_NTHREADS", "ITK_GLOBAL_DEFAULT_NUMBER_OF_THREADS")
_PR_SET_PDEATHSIG = 1
_WATCHDOG_SECONDS = 0.5

_installed: list[Any] = []  # the executor stack of `using` (a plain list: worker threads of the caller see it too)


# ---- the executor the edge chose ----------------------------------------------------------------------------------
@contextlib.contextmanager
def using(executor: Any | None) -> Iterator[Any | None]:
    """Run the per-case work of every stage inside the block on ``executor`` (``None``: local default)."""
    _installed.append(executor)
    try:
        yield executor
    finally:
        _installed.pop()


def current_executor() -> Any | None:
    """The executor installed by the innermost :func:`using` block, or ``None``."""
    return _installed[-1] if _installed else None


def is_dask(executor: Any) -> bool:
    """Whether ``executor`` is a ``dask.distributed`` client (its futures need Dask's own ``as_completed``)."""
    return type(executor).__module__.split(".")[0] == "distributed"


# ---- local worker processes ---------------------------------------------------------------------------------------
def _die_with_parent(parent_pid: int) -> None:
    """Exit this process when ``parent_pid`` is gone: ``PR_SET_PDEATHSIG`` on Linux plus a polling thread."""
    if sys.platform.startswith("linux"):
        try:
            import ctypes
            import signal

            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # no libc prctl: the watchdog thread still works
            pass

    def watch() -> None:
        while True:
            if os.getppid() != parent_pid:
                os._exit(1)
            threading.Event().wait(_WATCHDOG_SECONDS)

    if os.getppid() != parent_pid:  # the parent died before we got here
        os._exit(1)
    threading.Thread(target=watch, name="autounet-parent-watchdog", daemon=True).start()


def init_worker(parent_pid: int) -> None:
    """Initializer of local worker processes: single-threaded libraries and no life beyond the parent."""
    for name in WORKER_THREAD_VARIABLES:
        os.environ[name] = "1"
    _die_with_parent(parent_pid)
    if "torch" in sys.modules:  # normally not loaded yet (spawned workers); the variables above cover that case
        sys.modules["torch"].set_num_threads(1)
    if "numpy" in sys.modules:  # forked workers inherit loaded BLAS libraries: limit them where we can
        with contextlib.suppress(ImportError):
            from threadpoolctl import threadpool_limits

            threadpool_limits(1)


def start_method() -> str:
    """``fork`` where it is safe and saves each worker its imports (Linux, torch not loaded, no other threads
    besides progress-bar monitors), else ``spawn``: a parent holding CUDA or OpenMP threads (training) cannot
    deadlock spawned workers."""
    if not sys.platform.startswith("linux") or "torch" in sys.modules:
        return "spawn"
    others = [t for t in threading.enumerate() if t is not threading.current_thread() and t.name != "tqdm_monitor"
              and type(t).__name__ != "TMonitor"]
    return "spawn" if others else "fork"


def local_pool(workers: int) -> ProcessPoolExecutor:
    """A pool of ``workers`` processes that end with this process and use one thread each (see :func:`start_method`)."""
    return ProcessPoolExecutor(max_workers=max(1, workers), mp_context=multiprocessing.get_context(start_method()),
                               initializer=init_worker, initargs=(os.getpid(),))


# ---- maps ---------------------------------------------------------------------------------------------------------
def _broken(desc: str, workers: int, hint: str) -> AutounetError:
    return AutounetError(f"{desc}: a worker process died (usually out of memory). {hint}Retry with fewer workers "
                         f"(-j {max(1, workers // 2)}).")


def _lost(desc: str, exc: BaseException, hint: str) -> AutounetError:
    return AutounetError(f"{desc}: the cluster gave up on a task after its workers died repeatedly ({exc}). {hint}"
                         "Check the workers' memory limits and logs.")


def _bar(total: int, desc: str, progress: bool) -> Any:
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, disable=not progress, file=sys.stderr, leave=False, unit="case")


def _serial(fn: Callable[[T], R], items: Sequence[T], bar: Any) -> Iterator[R]:
    for item in items:
        yield fn(item)
        bar.update()


def _resolve(executor: Any | None) -> Any | None:
    return executor if executor is not None else current_executor()


def _can_start_processes() -> bool:
    """False inside a daemonic process (e.g. a Dask worker running a training task): it cannot have children."""
    return not multiprocessing.current_process().daemon


def _submit(executor: Any, fn: Callable[[T], R], item: T) -> Any:
    if is_dask(executor):
        return executor.submit(fn, item, pure=False)  # every call is a new task, never a cached one
    return executor.submit(fn, item)


def _dask_errors() -> tuple[type[BaseException], ...]:
    try:
        from distributed.scheduler import KilledWorker
    except ImportError:  # pragma: no cover - dask not installed
        return ()
    return (KilledWorker,)


def _completed(executor: Any, futures: Iterable[Any]) -> Iterator[Any]:
    """Futures as they finish, for concurrent.futures and Dask alike."""
    if is_dask(executor):
        from distributed import as_completed

        yield from as_completed(list(futures))
        return
    pending = set(futures)
    while pending:
        done, pending = wait(pending, return_when=FIRST_COMPLETED)
        yield from done


def map_ordered(fn: Callable[[T], R], items: Sequence[T], *, workers: int, progress: bool = False,
                desc: str = "", window: int = 4, executor: Any | None = None) -> Iterator[R]:
    """Yield ``fn(item)`` in input order (``fn`` and the items must be picklable when they run elsewhere).

    At most ``window * workers`` tasks are in flight on the local pool, so finished results never pile up in
    memory (on a cluster every task is submitted at once and the scheduler spreads them).

    Raises:
        AutounetError: a worker process died (local pool) or the cluster gave up on a task.
    """
    executor = _resolve(executor)
    with _bar(len(items), desc, progress) as bar:
        if executor is None and (workers <= 1 or len(items) <= 1 or not _can_start_processes()):
            yield from _serial(fn, items, bar)
            return
        with contextlib.ExitStack() as stack:
            if executor is None:
                executor = stack.enter_context(local_pool(min(workers, len(items))))
                limit = window * workers
            else:
                limit = len(items) or 1
            pending: deque[Any] = deque()
            try:
                for item in items:
                    pending.append(_submit(executor, fn, item))
                    if len(pending) >= limit:
                        yield pending.popleft().result()
                        bar.update()
                while pending:
                    yield pending.popleft().result()
                    bar.update()
            except BrokenProcessPool as exc:
                raise _broken(desc, workers, "") from exc
            except _dask_errors() as exc:
                raise _lost(desc, exc, "") from exc
            finally:
                for future in pending:
                    future.cancel()


def map_cases(fn: Callable[[T], R], items: Sequence[T], *, workers: int = 1, progress: bool = False,
              desc: str = "", executor: Any | None = None) -> list[R]:
    """``[fn(item) for item in items]``, on the executor in use or in ``workers`` local processes."""
    return list(map_ordered(fn, items, workers=workers, progress=progress, desc=desc, executor=executor))


def map_as_completed(fn: Callable[[T], R], items: Sequence[T], *, workers: int, progress: bool = False,
                     desc: str = "", on_failure: str = "", executor: Any | None = None) -> Iterator[R]:
    """Yield ``fn(item)`` as each finishes (any order); unstarted tasks are cancelled when the caller stops.

    ``on_failure`` is put in the message of a dead worker (e.g. what was kept).

    Raises:
        AutounetError: a worker process died (local pool) or the cluster gave up on a task.
    """
    executor = _resolve(executor)
    with _bar(len(items), desc, progress) as bar:
        if executor is None and (workers <= 1 or len(items) <= 1 or not _can_start_processes()):
            yield from _serial(fn, items, bar)
            return
        with contextlib.ExitStack() as stack:
            if executor is None:
                executor = stack.enter_context(local_pool(min(workers, len(items))))
            futures = [_submit(executor, fn, item) for item in items]
            done: set[int] = set()
            try:
                for future in _completed(executor, futures):
                    done.add(id(future))
                    yield future.result()
                    bar.update()
            except BrokenProcessPool as exc:
                raise _broken(desc, workers, on_failure) from exc
            except _dask_errors() as exc:
                raise _lost(desc, exc, on_failure) from exc
            finally:
                for future in futures:
                    if id(future) not in done:
                        future.cancel()


def iter_outcomes(fn: Callable[[T], R], items: Sequence[T], *, executor: Any | None = None,
                  workers: int = 1) -> Iterator[tuple[T, R | BaseException]]:
    """Yield ``(item, fn(item))`` as tasks finish, or ``(item, exception)`` for a task that failed or was lost.

    Unlike the maps, one failed task does not stop the others (for runs that end with a list of failed cases).
    """
    executor = _resolve(executor)
    if executor is None and (workers <= 1 or len(items) <= 1 or not _can_start_processes()):
        for item in items:
            try:
                yield item, fn(item)
            except Exception as exc:  # noqa: BLE001 - handed to the caller
                yield item, exc
        return
    with contextlib.ExitStack() as stack:
        if executor is None:
            executor = stack.enter_context(local_pool(min(workers, len(items))))
        futures = {_submit(executor, fn, item): item for item in items}
        finished: set[int] = set()
        try:
            for future in _completed(executor, futures):
                finished.add(id(future))
                try:
                    yield futures[future], future.result()
                except Exception as exc:  # noqa: BLE001 - handed to the caller (incl. a lost worker)
                    yield futures[future], exc
        finally:
            for future in futures:
                if id(future) not in finished:
                    future.cancel()
