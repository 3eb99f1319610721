"""Run independent jobs (trainings of folds and configurations) concurrently, one per device.

Jobs form a small dependency graph (a cascade's full-resolution folds need every low-resolution fold). Each device
slot runs one job at a time; a job starts once all its dependencies have finished successfully. With a single
device this degenerates to running the jobs in dependency order in the calling thread.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field

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


def run_jobs(jobs: Sequence[Job], devices: Sequence[str], launch: Callable[[Job, str], None]) -> ScheduleResult:
    """Run ``launch(job, device)`` for every job, at most one job per device at a time, respecting dependencies.

    A failing job does not stop independent jobs; jobs that depend on it are skipped.
    """
    if not devices:
        msg = "at least one device is needed to run jobs"
        raise UsageError(msg)
    _check_graph(jobs)
    result = ScheduleResult()
    pending = list(jobs)
    free = list(devices)
    running: dict[Future[None], tuple[Job, str]] = {}
    with ThreadPoolExecutor(max_workers=len(devices)) as pool:
        while pending or running:
            _skip_blocked(pending, result)
            for job in [j for j in pending if _ready(j, result)]:
                if not free:
                    break
                device = free.pop(0)
                pending.remove(job)
                running[pool.submit(launch, job, device)] = (job, device)
            if not running:
                if pending:  # nothing runnable and nothing running: remaining jobs are blocked
                    _skip_blocked(pending, result, force=True)
                break
            done, _ = wait(list(running), return_when=FIRST_COMPLETED)
            for fut in done:
                job, device = running.pop(fut)
                free.append(device)
                exc = fut.exception()
                if exc is None:
                    result.finished.append(job.key)
                else:
                    result.failed[job.key] = exc
    return result


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
