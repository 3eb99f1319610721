"""Folder prediction as one task per case on an executor (a Dask cluster), each worker loading the model once.

The client discovers the cases, skips those whose outputs exist (outputs are written atomically, so an existing
file is complete: the run is resumable) and submits one small task per remaining case. A task gets its worker's
:class:`Predictor` from a per-process cache keyed by :class:`ModelSpec` (model folder, folds, checkpoint and
settings), predicts the case and writes the outputs itself into the shared output folder; only a small record
comes back. A case that fails is listed with its error; a worker lost mid-case has its task run again elsewhere by
the scheduler.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autounet._log import get_logger
from autounet._parallel import is_dask, iter_outcomes
from autounet.errors import AutounetError
from autounet.inference.runner import CaseFailure, RunReport

log = get_logger(__name__)

_CACHE: dict[ModelSpec, Any] = {}
_CACHE_LOCK = threading.Lock()


@dataclass(frozen=True)
class ModelSpec:
    """How to build a :class:`~autounet.inference.Predictor` on a worker (the arguments of ``from_model_dir``)."""

    model_dir: str
    folds: tuple[str, ...] | None = None
    checkpoint: str = "final"
    device: str = "auto"
    tile_batch: int | None = None
    use_mirroring: bool = True
    step: float = 0.5
    precision: str = "auto"
    backend: str = "torch"
    threads: int | None = None

    def build(self) -> Any:
        """Load the predictor (on the worker's own device when ``device`` is ``auto``)."""
        from autounet.inference.predictor import Predictor

        return Predictor.from_model_dir(self.model_dir, folds=self.folds, checkpoint=self.checkpoint,
                                        device=self.device, tile_batch=self.tile_batch,
                                        use_mirroring=self.use_mirroring, step=self.step, precision=self.precision,
                                        backend=self.backend, threads=self.threads)


def cached_predictor(spec: ModelSpec) -> Any:
    """This process's predictor for ``spec``, loaded on first use (so once per worker, not once per case)."""
    with _CACHE_LOCK:
        if spec not in _CACHE:
            _CACHE.clear()  # one model per worker at a time: memory stays bounded
            _CACHE[spec] = spec.build()
        return _CACHE[spec]


@dataclass(frozen=True)
class CaseTask:
    """One case: its input files and where its outputs go."""

    spec: ModelSpec
    case_id: str
    images: tuple[str, ...]
    output: str
    save_probabilities: bool = False


@dataclass(frozen=True)
class CaseOutcome:
    """What a task reports back (small)."""

    case_id: str
    error: str | None = None
    seconds: float = 0.0


def predict_case(task: CaseTask) -> CaseOutcome:
    """Predict one case with the worker's cached model and write its outputs atomically (runs on a worker)."""
    start = time.perf_counter()
    try:
        predictor = cached_predictor(task.spec)
        predictor.predict_file(list(task.images), task.output, save_probabilities=task.save_probabilities)
    except Exception as exc:  # noqa: BLE001 - reported per case, the others continue
        message = str(exc) if isinstance(exc, AutounetError) else f"{type(exc).__name__}: {exc}"
        return CaseOutcome(task.case_id, message, time.perf_counter() - start)
    return CaseOutcome(task.case_id, None, time.perf_counter() - start)


def predict_folder_on(executor: Any, predictor: Any, spec: ModelSpec,
                      source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
                      output_dir: str | os.PathLike[str], *, save_probabilities: bool = False,
                      overwrite: bool = False, part: int = 0, parts: int = 1, output_format: str | None = None,
                      on_start: Callable[[int], None] | None = None,
                      on_done: Callable[[str], None] | None = None) -> RunReport:
    """Like :meth:`Predictor.predict_folder`, with one task per case on ``executor``.

    ``predictor`` (loaded here, e.g. on the CPU) only names the cases' outputs and writes the run's records;
    workers build their own from ``spec``. Cascade models predict their first stage inside each task.
    """
    from autounet.inference.inputs import discover_cases, shard
    from autounet.inference.predictor import _outputs_exist

    start = time.perf_counter()
    sources = [source] if isinstance(source, (str, os.PathLike)) else list(source)
    output_dir = Path(output_dir)
    cases = shard(discover_cases(sources, num_channels=predictor.num_channels), part=part, parts=parts)
    report = RunReport()
    tasks = []
    for case in cases:
        output = output_dir / f"{case.case_id}{predictor._output_ending(case, output_format)}"
        if case.error is not None:
            report.failed.append(CaseFailure(case.case_id, "reading/preprocessing", case.error))
        elif not overwrite and _outputs_exist(output, save_probabilities):
            report.skipped.append(case.case_id)
        else:
            tasks.append(CaseTask(spec, case.case_id, tuple(str(p) for p in case.images), str(output),
                                  save_probabilities))
    predictor._write_run_files(output_dir, sources=sources, save_probabilities=save_probabilities)
    if on_start is not None:
        on_start(len(tasks))
    log.info("Predicting %d case(s) on %s (%d skipped, outputs exist).", len(tasks),
             "a Dask cluster" if is_dask(executor) else type(executor).__name__, len(report.skipped))
    for task, outcome in iter_outcomes(predict_case, tasks, executor=executor):
        if isinstance(outcome, BaseException):
            report.failed.append(CaseFailure(task.case_id, "worker", f"{type(outcome).__name__}: {outcome}"))
        elif outcome.error is not None:
            report.failed.append(CaseFailure(task.case_id, "prediction", outcome.error))
        else:
            report.written.append(task.case_id)
        if on_done is not None:
            on_done(task.case_id)
    report.seconds = time.perf_counter() - start
    return report
