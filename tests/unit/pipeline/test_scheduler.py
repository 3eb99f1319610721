"""Device scheduling of training jobs: concurrency per device, dependencies, failure isolation."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor

import pytest

from autounet.errors import UsageError
from autounet.pipeline.scheduler import Job, run_jobs


def _threads(launch: Callable[[Job, str], None], pool: ThreadPoolExecutor) -> Callable[[Job, str], Future]:
    return lambda job, device: pool.submit(launch, job, device)


def _inline(launch: Callable[[Job, str], None]) -> Callable[[Job, str], Future]:
    def start(job: Job, device: str) -> Future:
        future: Future = Future()
        try:
            future.set_result(launch(job, device))
        except Exception as exc:  # noqa: BLE001
            future.set_exception(exc)
        return future

    return start


def test_one_job_per_device_and_dependencies_respected() -> None:
    active: dict[str, int] = {}
    peak = {"n": 0}
    order: list[str] = []
    lock = threading.Lock()

    def launch(job: Job, device: str) -> None:
        with lock:
            active[device] = active.get(device, 0) + 1
            assert active[device] == 1, "two jobs on one device"
            peak["n"] = max(peak["n"], sum(active.values()))
        time.sleep(0.02)
        with lock:
            active[device] -= 1
            order.append(job.key)

    jobs = [Job(f"lowres_{k}") for k in range(4)] + [
        Job("cascade_0", depends_on=tuple(f"lowres_{k}" for k in range(4)))]
    with ThreadPoolExecutor(2) as pool:
        result = run_jobs(jobs, ["cuda:0", "cuda:1"], _threads(launch, pool))
    assert sorted(result.finished) == sorted(j.key for j in jobs)
    assert order[-1] == "cascade_0"
    assert peak["n"] == 2


def test_failure_skips_dependants_only() -> None:
    def launch(job: Job, device: str) -> None:
        if job.key == "a":
            raise RuntimeError("boom")

    jobs = [Job("a"), Job("b"), Job("c", depends_on=("a",)), Job("d", depends_on=("c",))]
    result = run_jobs(jobs, ["cpu"], _inline(launch))
    assert result.finished == ["b"]
    assert list(result.failed) == ["a"]
    assert sorted(result.skipped) == ["c", "d"]


def test_bad_graph() -> None:
    with pytest.raises(UsageError, match="unknown job"):
        run_jobs([Job("a", depends_on=("zz",))], ["cpu"], _inline(lambda j, d: None))
    with pytest.raises(UsageError, match="duplicate"):
        run_jobs([Job("a"), Job("a")], ["cpu"], _inline(lambda j, d: None))


def test_start_errors_and_on_done_errors_fail_the_job_only() -> None:
    def start(job: Job, device: str) -> Future:
        if job.key == "a":
            raise RuntimeError("could not start")
        return _inline(lambda j, d: j.key)(job, device)

    seen: list[tuple[str, str]] = []

    def on_done(job: Job, future: Future) -> None:
        seen.append((job.key, future.result()))
        if job.key == "b":
            raise ValueError("bad result")

    jobs = [Job("a"), Job("b"), Job("c"), Job("d", depends_on=("b",))]
    result = run_jobs(jobs, ["cpu"], start, on_done=on_done)
    assert result.finished == ["c"]
    assert str(result.failed["a"]) == "could not start" and str(result.failed["b"]) == "bad result"
    assert result.skipped == ["d"] and seen == [("b", "b"), ("c", "c")]
