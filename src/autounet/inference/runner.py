"""A small pipeline of threads: read + preprocess the next cases and export the previous ones while the network
predicts the current one.

Stage functions run in thread pools (NumPy, SimpleITK and torch release the GIL in their heavy parts, so threads
overlap well and share the loaded model without copying it into worker processes). Memory stays bounded: at most
``lookahead`` preprocessed cases wait for the network and at most ``max_pending_exports`` predictions wait for
export. A failing case is recorded with its error and the others continue; the caller reports the failures.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from autounet._log import get_logger
from autounet.errors import AutounetError

log = get_logger(__name__)

C = TypeVar("C")


@dataclass
class CaseFailure:
    """A case that could not be predicted and why."""

    case_id: str
    stage: str
    message: str


@dataclass
class RunReport:
    """Outcome of a folder prediction."""

    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    failed: list[CaseFailure] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed


@dataclass(frozen=True)
class Stages(Generic[C]):
    """The three stage functions: ``load(case) -> loaded``, ``predict(loaded) -> predicted``,
    ``export(case, loaded, predicted) -> None``."""

    load: Callable[[C], Any]
    predict: Callable[[Any], Any]
    export: Callable[[C, Any, Any], None]


def _describe(exc: BaseException) -> str:
    if isinstance(exc, AutounetError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def run_cases(cases: Sequence[C], stages: Stages[C], *, case_id: Callable[[C], str], lookahead: int = 2,
              load_workers: int = 1, export_workers: int = 1, max_pending_exports: int = 2,
              on_done: Callable[[str], None] | None = None) -> RunReport:
    """Run ``load → predict → export`` over ``cases`` with loading and exporting overlapped with prediction.

    ``predict`` runs in the calling thread (the device's owner). ``on_done(case_id)`` is called after each case
    (written or failed), e.g. to advance a progress bar.
    """
    report = RunReport()
    start = time.perf_counter()
    todo = deque(cases)
    loading: deque[tuple[C, Future[Any]]] = deque()
    exporting: dict[Future[None], C] = {}

    def finished(c: C) -> None:
        if on_done is not None:
            on_done(case_id(c))

    def fail(c: C, stage: str, exc: BaseException) -> None:
        log.error("case %s failed during %s: %s", case_id(c), stage, _describe(exc))
        report.failed.append(CaseFailure(case_id(c), stage, _describe(exc)))
        finished(c)

    def collect(done: Iterable[Future[None]]) -> None:
        for fut in done:
            c = exporting.pop(fut)
            exc = fut.exception()
            if exc is not None:
                fail(c, "export", exc)
            else:
                report.written.append(case_id(c))
                finished(c)

    with ThreadPoolExecutor(max(1, load_workers), thread_name_prefix="autounet-load") as loader, \
            ThreadPoolExecutor(max(1, export_workers), thread_name_prefix="autounet-export") as exporter:
        try:
            while todo or loading:
                while todo and len(loading) < max(1, lookahead):
                    c = todo.popleft()
                    loading.append((c, loader.submit(stages.load, c)))
                c, fut = loading.popleft()
                try:
                    loaded = fut.result()
                except Exception as exc:  # noqa: BLE001 - reported per case
                    fail(c, "reading/preprocessing", exc)
                    continue
                try:
                    predicted = stages.predict(loaded)
                except Exception as exc:  # noqa: BLE001 - reported per case
                    fail(c, "prediction", exc)
                    continue
                while len(exporting) >= max(1, max_pending_exports):
                    done, _ = wait(list(exporting), return_when=FIRST_COMPLETED)
                    collect(done)
                exporting[exporter.submit(stages.export, c, loaded, predicted)] = c
                del loaded, predicted
            while exporting:
                done, _ = wait(list(exporting), return_when=FIRST_COMPLETED)
                collect(done)
        except BaseException:
            for _, f in loading:
                f.cancel()
            raise
    report.seconds = time.perf_counter() - start
    return report
