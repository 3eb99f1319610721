"""Device scheduling of training jobs: concurrency per device, dependencies, failure isolation."""

from __future__ import annotations

import threading
import time

import pytest

from autounet.errors import UsageError
from autounet.pipeline.scheduler import Job, run_jobs


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
    result = run_jobs(jobs, ["cuda:0", "cuda:1"], launch)
    assert sorted(result.finished) == sorted(j.key for j in jobs)
    assert order[-1] == "cascade_0"
    assert peak["n"] == 2


def test_failure_skips_dependants_only() -> None:
    def launch(job: Job, device: str) -> None:
        if job.key == "a":
            raise RuntimeError("boom")

    jobs = [Job("a"), Job("b"), Job("c", depends_on=("a",)), Job("d", depends_on=("c",))]
    result = run_jobs(jobs, ["cpu"], launch)
    assert result.finished == ["b"]
    assert list(result.failed) == ["a"]
    assert sorted(result.skipped) == ["c", "d"]


def test_bad_graph() -> None:
    with pytest.raises(UsageError, match="unknown job"):
        run_jobs([Job("a", depends_on=("zz",))], ["cpu"], lambda j, d: None)
    with pytest.raises(UsageError, match="duplicate"):
        run_jobs([Job("a"), Job("a")], ["cpu"], lambda j, d: None)
