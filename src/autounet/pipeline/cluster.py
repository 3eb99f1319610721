"""Where per-case tasks and training jobs run: ``--cluster`` resolved into an executor, and training jobs on Dask.

``cluster`` forms (CLI ``--cluster``, API ``cluster=``):

* ``None``: the local process pool of :mod:`autounet._parallel` (the default, no set-up);
* ``local-dask``: a Dask ``LocalCluster`` of worker processes on this machine (one thread each);
* ``tcp://HOST:8786`` (any ``scheme://``): a running Dask scheduler;
* ``slurm``, ``pbs``, ``sge``, ``lsf``: workers started as batch jobs through dask-jobqueue, configured by a small
  YAML file (``--cluster-config``)::

      cluster:            # keyword arguments of dask_jobqueue.SLURMCluster (PBSCluster, ...)
        queue: gpu
        cores: 8
        memory: 32GB
        walltime: "04:00:00"
        job_extra_directives: ["--gres=gpu:1"]
        worker_extra_args: ["--resources", "GPU=1"]
      jobs: 4             # fixed number of jobs, or
      adapt: {minimum_jobs: 0, maximum_jobs: 20}
      wait_for_workers: 1 # block until this many workers joined (default 1)
      timeout: 600        # seconds to wait for them

Training jobs (:func:`run_jobs_on_dask`) are Dask tasks that need the worker resource ``GPU: 1``; a job's
dependencies (a cascade's full-resolution folds wait for every low-resolution fold) are task dependencies.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from autounet._log import get_logger
from autounet.errors import ClusterError, ConfigError
from autounet.pipeline.scheduler import Job, ScheduleResult, _check_graph

log = get_logger(__name__)

LOCAL_DASK = "local-dask"
#: batch system -> (dask_jobqueue class, the submit command that must be on PATH)
JOBQUEUE_SYSTEMS: dict[str, tuple[str, str]] = {
    "slurm": ("SLURMCluster", "sbatch"), "pbs": ("PBSCluster", "qsub"), "sge": ("SGECluster", "qsub"),
    "lsf": ("LSFCluster", "bsub"),
}
CONNECT_TIMEOUT_S = 5
GPU_RESOURCE = "GPU"


def describe(cluster: str | None) -> str:
    """A short name of where the work runs (for messages)."""
    return "local process pool" if cluster is None else cluster


def _need_distributed(cluster: str) -> Any:
    try:
        import distributed
    except ImportError as exc:
        msg = f"--cluster {cluster} needs Dask: pip install 'autounet[dask]'."
        raise ClusterError(msg) from exc
    return distributed


def load_cluster_config(path: str | os.PathLike[str] | None) -> dict[str, Any]:
    """Read the ``--cluster-config`` YAML file (an empty mapping when ``path`` is None)."""
    if path is None:
        return {}
    path = Path(path)
    try:
        import yaml

        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except ImportError as exc:
        msg = f"--cluster-config {path} needs PyYAML: pip install 'autounet[dask]'."
        raise ClusterError(msg) from exc
    except OSError as exc:
        msg = f"Cannot read the cluster configuration {path}: {exc.strerror or exc}."
        raise ConfigError(msg) from exc
    except yaml.YAMLError as exc:
        msg = f"The cluster configuration {path} is not valid YAML: {str(exc).splitlines()[0]}"
        raise ConfigError(msg) from exc
    allowed = {"cluster", "jobs", "adapt", "wait_for_workers", "timeout", "n_workers", "resources"}
    if not isinstance(data, dict) or set(data) - allowed:
        extra = sorted(set(data) - allowed) if isinstance(data, dict) else type(data).__name__
        msg = f"The cluster configuration {path} has unknown entries {extra}; allowed: {', '.join(sorted(allowed))}."
        raise ConfigError(msg)
    return data


@contextlib.contextmanager
def open_cluster(cluster: str | None, *, config: str | os.PathLike[str] | None = None,
                 workers: int = 2) -> Iterator[Any | None]:
    """Yield the executor for ``cluster`` (``None`` for the local process pool) and close what was started.

    Raises:
        ClusterError: Dask is not installed, the scheduler is unreachable, or the batch system is missing.
        ConfigError: an unreadable or malformed ``config``.
    """
    if cluster is None:
        yield None
        return
    settings = load_cluster_config(config)
    if cluster in JOBQUEUE_SYSTEMS:
        _check_batch_system(cluster)
    distributed = _need_distributed(cluster)
    with contextlib.ExitStack() as stack:
        if cluster == LOCAL_DASK:
            local = stack.enter_context(distributed.LocalCluster(
                n_workers=int(settings.get("n_workers", workers)), threads_per_worker=1, processes=True,
                dashboard_address=None, resources=settings.get("resources", {GPU_RESOURCE: 1})))
            client = stack.enter_context(distributed.Client(local))
        elif "://" in cluster:
            client = stack.enter_context(_connect(distributed, cluster))
        elif cluster in JOBQUEUE_SYSTEMS:
            client = stack.enter_context(_jobqueue(distributed, cluster, settings, config))
        else:
            msg = (f"Unknown --cluster {cluster!r}: use local-dask, tcp://HOST:PORT (a running Dask scheduler) or "
                   f"one of {', '.join(JOBQUEUE_SYSTEMS)} (with --cluster-config FILE).")
            raise ClusterError(msg)
        log.info("Running per-case work on %s (%d worker(s) connected).", cluster,
                 len(client.scheduler_info().get("workers", {})))
        yield client


def _connect(distributed: Any, address: str) -> Any:
    try:
        return distributed.Client(address, timeout=f"{CONNECT_TIMEOUT_S}s")
    except (OSError, TimeoutError) as exc:
        msg = (f"Cannot reach the Dask scheduler at {address} within {CONNECT_TIMEOUT_S} s: start one with "
               f"`dask scheduler` (and workers with `dask worker {address}`) or check the address.")
        raise ClusterError(msg) from exc
    except Exception as exc:  # something answered, but not a Dask scheduler (or a bad address)
        msg = (f"{address} is not a usable Dask scheduler ({type(exc).__name__}); check the address and port "
               "(the scheduler's default is 8786).")
        raise ClusterError(msg) from exc


def _check_batch_system(system: str) -> None:
    command = JOBQUEUE_SYSTEMS[system][1]
    if shutil.which(command) is None:
        msg = (f"--cluster {system}: the batch command {command!r} is not on this machine's PATH; run on a "
               f"{system.upper()} login node, or use --cluster tcp://HOST:8786 with a running Dask scheduler.")
        raise ClusterError(msg)


@contextlib.contextmanager
def _jobqueue(distributed: Any, system: str, settings: Mapping[str, Any],
              config: str | os.PathLike[str] | None) -> Iterator[Any]:
    class_name, command = JOBQUEUE_SYSTEMS[system]
    if config is None:
        msg = f"--cluster {system} needs --cluster-config FILE (queue, cores, memory, walltime; see docs/cluster.md)."
        raise ClusterError(msg)
    try:
        import dask_jobqueue
    except ImportError as exc:
        msg = f"--cluster {system} needs dask-jobqueue: pip install 'autounet[dask]'."
        raise ClusterError(msg) from exc
    try:
        job_cluster = getattr(dask_jobqueue, class_name)(**dict(settings.get("cluster") or {}))
    except (TypeError, ValueError) as exc:
        msg = f"The cluster configuration {config} does not fit dask_jobqueue.{class_name}: {exc}"
        raise ConfigError(msg) from exc
    with job_cluster, distributed.Client(job_cluster) as client:
        if "adapt" in settings:
            job_cluster.adapt(**dict(settings["adapt"]))
        else:
            job_cluster.scale(jobs=int(settings.get("jobs", 1)))
        wanted = int(settings.get("wait_for_workers", 1))
        if wanted > 0:
            try:
                client.wait_for_workers(wanted, timeout=float(settings.get("timeout", 600)))
            except TimeoutError as exc:
                msg = (f"--cluster {system}: no worker joined within {settings.get('timeout', 600)} s; check the "
                       f"queue (`{command}` jobs pending?) and the job logs.")
                raise ClusterError(msg) from exc
        yield client


# ---- training jobs as Dask tasks ----------------------------------------------------------------------------------
def _run_after(work: Callable[[Job], None], job: Job, _dependencies: Sequence[Any]) -> str:
    """Task body: Dask passes the dependencies' results (so it runs only once they all succeeded)."""
    work(job)
    return job.key


def dask_submitter(client: Any, *, resources: Mapping[str, float] | None = None
                   ) -> Callable[[Job, Callable[[Job], None]], Any]:
    """``submit(job, work) -> Future``: ``work(job)`` as a Dask task needing ``resources`` (default one GPU).

    Jobs must be submitted after the jobs they depend on; those become task dependencies. A job whose dependency
    failed fails too (with the dependency's error) without running.
    """
    needs = dict(resources) if resources is not None else {GPU_RESOURCE: 1}
    futures: dict[str, Any] = {}

    def submit(job: Job, work: Callable[[Job], None]) -> Any:
        dependencies = [futures[key] for key in job.depends_on if key in futures]
        future = client.submit(_run_after, work, job, dependencies, key=f"train-{job.key}-{uuid.uuid4().hex[:8]}",
                               resources=needs or None, pure=False, retries=0)
        futures[job.key] = future
        return future

    return submit


def _check_resources(client: Any, needs: Mapping[str, float]) -> None:
    """A clear error instead of tasks waiting forever when no connected worker offers ``needs``."""
    workers = client.scheduler_info().get("workers", {})
    if not needs or not workers:  # no requirement, or workers still starting (batch jobs): nothing to judge yet
        return
    if not any(all(w.get("resources", {}).get(k, 0) >= v for k, v in needs.items()) for w in workers.values()):
        wanted = " ".join(f"{k}={v:g}" for k, v in needs.items())
        msg = (f"No Dask worker offers the resources a training task needs ({wanted}); start the workers with "
               f"`dask worker ... --resources \"{wanted}\"` (jobqueue: worker_extra_args in --cluster-config).")
        raise ClusterError(msg)


def _topological(jobs: Sequence[Job]) -> list[Job]:
    done: set[str] = set()
    ordered: list[Job] = []
    remaining = list(jobs)
    while remaining:
        ready = [j for j in remaining if all(d in done or d not in {x.key for x in jobs} for d in j.depends_on)]
        if not ready:
            msg = f"training jobs depend on each other in a cycle: {[j.key for j in remaining]}"
            raise ConfigError(msg)
        for job in ready:
            ordered.append(job)
            done.add(job.key)
            remaining.remove(job)
    return ordered


def run_jobs_on_dask(client: Any, jobs: Sequence[Job], work: Callable[[Job], None], *,
                     resources: Mapping[str, float] | None = None,
                     on_done: Callable[[str, BaseException | None], None] | None = None) -> ScheduleResult:
    """Run ``work(job)`` for every job as a Dask task (one GPU each unless ``resources`` says otherwise).

    Like :func:`autounet.pipeline.scheduler.run_jobs`: independent jobs continue when one fails; jobs that depend
    on a failed job are reported as skipped. ``work`` and the jobs must be picklable.
    """
    from distributed import as_completed

    _check_graph(jobs)
    _check_resources(client, {GPU_RESOURCE: 1} if resources is None else resources)
    submit = dask_submitter(client, resources=resources)
    ordered = _topological(jobs)
    by_future = {submit(job, work): job for job in ordered}
    errors: dict[str, BaseException | None] = {}
    for future in as_completed(list(by_future)):
        job = by_future[future]
        errors[job.key] = future.exception()
        if on_done is not None:
            on_done(job.key, errors[job.key])
    result = ScheduleResult()
    for job in ordered:  # dependencies first, so a failure is told apart from its consequences
        exc = errors[job.key]
        if exc is None:
            result.finished.append(job.key)
        elif any(d in result.failed or d in result.skipped for d in job.depends_on):
            result.skipped.append(job.key)
        else:
            result.failed[job.key] = exc
    return result
