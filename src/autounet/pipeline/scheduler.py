"""Run independent jobs (trainings of folds and configurations) concurrently, one per device.

Jobs form a small dependency graph (a cascade's full-resolution folds need every low-resolution fold). Each device
slot runs one job at a time; a job starts once all its dependencies have finished successfully. The scheduler does
not run anything itself: ``start(job, device)`` returns a :class:`~concurrent.futures.Future` (already done when
the job ran inline, or pending in a process pool or on a cluster), so the same graph logic drives every executor.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, field
from typing import Any

from autounet.errors import UsageError


@dataclass(frozen=True)
class Job:
    """One unit of work with a unique ``key`` and the keys it waits for."""

    key: str
    depends_on: tuple[str, ...] = ()
    payload: object = None


@dataclass
class ScheduleResult:
    """Which jobs finished, failed (with their error) or were skipped because a dependency failed."""

    finished: list[str] = field(default_factory=list)
    failed: dict[str, BaseException] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)


def _check_graph(jobs: Sequence[Job]) -> None:
    keys = [j.key for j in jobs]
    if len(set(keys)) != len(keys):
        msg = f"duplicate job keys: {sorted(k for k in set(keys) if keys.count(k) > 1)}"
        raise UsageError(msg)
    for job in jobs:
        unknown = [d for d in job.depends_on if d not in keys]
        if unknown:
            msg = f"job {job.key!r} depends on unknown job(s) {unknown}"
            raise UsageError(msg)


def run_jobs(jobs: Sequence[Job], devices: Sequence[str], start: Callable[[Job, str], Future[Any]],
             *, on_done: Callable[[Job, Future[Any]], None] | None = None) -> ScheduleResult:
    """Start every job with ``start(job, device)``, at most one job per device at a time, respecting dependencies.

    ``on_done(job, future)`` is called as each job ends (successfully or not; an exception it raises counts as the
    job's failure). A failing job does not stop independent jobs; jobs that depend on it are skipped.
    """
    if not devices:
        msg = "at least one device is needed to run jobs"
        raise UsageError(msg)
    _check_graph(jobs)
    result = ScheduleResult()
    pending = list(jobs)
    free = list(devices)
    running: dict[Future[Any], tuple[Job, str]] = {}
    while pending or running:
        _skip_blocked(pending, result)
        for job in [j for j in pending if _ready(j, result)]:
            if not free:
                break
            device = free.pop(0)
            pending.remove(job)
            running[_started(start, job, device)] = (job, device)
        if not running:
            if pending:  # nothing runnable and nothing running: remaining jobs are blocked
                _skip_blocked(pending, result, force=True)
            break
        done, _ = wait(list(running), return_when=FIRST_COMPLETED)
        for fut in done:
            job, device = running.pop(fut)
            free.append(device)
            exc = fut.exception()
            if exc is None and on_done is not None:
                exc = _call(on_done, job, fut)
            if exc is None:
                result.finished.append(job.key)
            else:
                result.failed[job.key] = exc
    return result


def _started(start: Callable[[Job, str], Future[Any]], job: Job, device: str) -> Future[Any]:
    """``start(job, device)``; an error raised while starting becomes the job's failed future."""
    try:
        return start(job, device)
    except (KeyboardInterrupt, SystemExit):
        raise
    except Exception as exc:  # noqa: BLE001 - reported as the job's failure
        failed: Future[Any] = Future()
        failed.set_exception(exc)
        return failed


def _call(on_done: Callable[[Job, Future[Any]], None], job: Job, fut: Future[Any]) -> BaseException | None:
    try:
        on_done(job, fut)
    except Exception as exc:  # noqa: BLE001 - reported as the job's failure
        return exc
    return None


def _ready(job: Job, result: ScheduleResult) -> bool:
    return all(d in result.finished for d in job.depends_on)


def _skip_blocked(pending: list[Job], result: ScheduleResult, *, force: bool = False) -> None:
    changed = True
    while changed:  # propagate through chains of dependants
        changed = False
        blocked_keys = set(result.failed) | set(result.skipped)
        for job in list(pending):
            if force or any(d in blocked_keys for d in job.depends_on):
                pending.remove(job)
                result.skipped.append(job.key)
                changed = True
