"""``autounet run``: verify → fingerprint → plan → preprocess → train (+ validate) every fold → find-best → report.

Every step is idempotent and resumable: the fingerprint and preprocessed cases are reused when up to date, a fold
with ``checkpoint_final`` and a validation summary is not trained again, an interrupted fold resumes from its latest
checkpoint, and a fold that finished training but not validation is only validated. Every fold goes through
:func:`autounet.pipeline.training.run_training`; with several devices the independent trainings run concurrently,
one spawned process per device, or through any ``submit(job, runtime) -> Future`` given to :func:`run`.

Cascades (:mod:`autounet.pipeline.cascade`): ``3d_cascade_fullres`` brings in ``3d_lowres``, whose folds (all folds
of the splits) also write their validation predictions to ``predicted_next_stage/``; every cascade fold waits for
all of them.
"""

from __future__ import annotations

import functools
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

from autounet._log import get_logger
from autounet._parallel import current_executor, is_dask
from autounet.dataset import RawDataset, open_raw_dataset, verify
from autounet.ensembling.find_best import find_best
from autounet.errors import AutounetError, DatasetError, UsageError
from autounet.pipeline.cascade import (
    folds_to_train,
    pending_next_stage_cases,
    previous_stages,
    with_previous_stages,
)
from autounet.pipeline.cluster import run_jobs_on_dask
from autounet.pipeline.scheduler import Job, run_jobs
from autounet.pipeline.training import (
    FoldResult,
    ProcessSubmitter,
    Submit,
    TrainingJob,
    run_training,
    submit_inline,
)
from autounet.pipeline.validation import ValidationOptions, is_validated
from autounet.planning.store import plan_dataset
from autounet.preprocessing import run as preprocess
from autounet.report import build_report
from autounet.schemas.results import InferenceInformation
from autounet.schemas.training import (
    RuntimeSettings,
    TrainingConfig,
    canonical_budget,
    check_device,
    split_settings,
)
from autounet.schemas.training import training_config as make_training_config
from autounet.training import FINAL
from autounet.workspace import Workspace, fold_dir_name

log = get_logger(__name__)

DEFAULT_CONFIGURATIONS = ("2d", "3d_fullres", "3d_lowres", "3d_cascade_fullres")


def _one_gpu() -> dict[str, float]:
    return {"GPU": 1}


@dataclass(frozen=True)
class RunOptions:
    """What ``autounet run`` does.

    Attributes:
        configurations: configurations to train (those the plans do not contain are skipped with a message).
        folds: cross-validation folds.
        preset: planner preset (``default``, ``resenc-m``, ``resenc-l``, ``resenc-xl``).
        budget: ``short`` (CPU-sized schedule) or ``full`` (the method's 1000 × 250 schedule).
        devices: training devices (``auto``, ``cpu``, ``cuda``, ``cuda:N``, ``mps``); more than one runs independent
            trainings concurrently, one per device.
        workers: processes for fingerprinting, preprocessing and evaluation.
        training_overrides: recipe or runtime settings (``autounet.schemas.training``) overriding the budget's.
        progress: show progress bars.
        cluster_resources: with ``--cluster`` (Dask), the worker resources each training task needs (default one
            ``GPU``; workers are started with ``--resources GPU=1``).
        time_budget: seconds for the whole run (``--time-budget``); divided over the trainings (3D folds weigh
            twice a 2D fold), each sized by :mod:`autounet.training.time_budget`. ``budget="short"`` without it
            gives every training ``SHORT_BUDGET_SECONDS``.
    """

    configurations: tuple[str, ...] = DEFAULT_CONFIGURATIONS
    folds: tuple[int, ...] = (0, 1, 2, 3, 4)
    preset: str = "default"
    budget: str = "short"
    devices: tuple[str, ...] = ("auto",)
    workers: int = 2
    training_overrides: dict[str, object] = field(default_factory=dict)
    progress: bool = False
    #: scale (issue 17): Dask worker resources each training task needs (None: no requirement)
    cluster_resources: dict[str, float] | None = field(default_factory=_one_gpu)
    time_budget: float | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "budget", canonical_budget(self.budget))
        if not self.folds or not self.configurations or not self.devices:
            msg = "run needs at least one configuration, one fold and one device."
            raise UsageError(msg)
        for device in self.devices:
            check_device(device, where="--devices")
        split_settings(self.training_overrides)  # unknown names fail before any work

    @property
    def timed(self) -> bool:
        """Trainings sized by time (``time_budget``, or the short budget without a fixed schedule)."""
        fixed = {"epochs", "iterations_per_epoch"} & set(self.training_overrides)
        return self.time_budget is not None or (self.budget == "short" and not fixed)

    def training_config(self, spatial_dims: int = 2) -> TrainingConfig:
        """The recipe and runtime settings of this budget for a 2D or 3D configuration, with the overrides.

        Timed trainings (``timed``) take the full recipe (on a CPU with the CPU batch) and get their schedule from
        their share of the time budget.
        """
        settings: dict[str, object] = {"progress": self.progress}
        if self.timed:
            from autounet.training.time_budget import recipe_for

            device = str(self.training_overrides.get("device", self.devices[0]))
            settings.update(recipe_for(device, spatial_dims))
            return make_training_config("full", spatial_dims=spatial_dims, **{**settings, **self.training_overrides})
        return make_training_config(self.budget, spatial_dims=spatial_dims, **{**settings, **self.training_overrides})


@dataclass
class RunSummary:
    """What a run did and what it chose."""

    dataset_name: str
    plans_name: str
    configurations: list[str]
    trained: list[str] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)
    information: InferenceInformation | None = None
    report: Path | None = None
    skipped_configurations: list[str] = field(default_factory=list)


StepCallback = Callable[[str, str], None]


def run(workspace: Workspace, dataset: str | int | os.PathLike[str], *, options: RunOptions | None = None,
        on_step: StepCallback | None = None, submit: Submit | None = None) -> RunSummary:
    """Run the whole method on a raw dataset of ``workspace`` and return what was done and chosen.

    ``on_step(step, message)`` is called as each step starts or finishes (the CLI prints it). ``submit(job,
    runtime)`` runs one fold's :func:`~autounet.pipeline.training.run_training` and returns its future (default:
    in this process for one device, one spawned process per device for several).
    """
    options = options or RunOptions()
    started = time.monotonic()
    say = on_step or (lambda step, message: log.info("[%s] %s", step, message))
    raw = open_raw_dataset(dataset, workspace)
    name = raw.name
    say("verify", f"checking {len(raw.cases)} cases of {name}")
    report = verify(raw, workspace=workspace, workers=options.workers, progress=options.progress)
    if not report.ok:
        msg = f"{name} has {len(report.problems)} problem(s); fix them first (see `autounet verify {name}`):\n" \
              + report.format()
        raise DatasetError(msg)
    say("plan", f"fingerprint and plans (preset {options.preset})")
    planning, plans_path = plan_dataset(workspace, name, preset=options.preset, workers=options.workers,
                                        progress=options.progress)
    plans = planning.plans
    present = [c for c in options.configurations if c in plans.configurations]
    summary = RunSummary(dataset_name=name, plans_name=plans.plans_name, configurations=present,
                         skipped_configurations=[c for c in options.configurations if c not in present])
    for skipped in summary.skipped_configurations:
        say("plan", f"{skipped}: not in {plans_path.name} (the planner did not create it); skipped")
    if not present:
        msg = f"None of {', '.join(options.configurations)} is in {plans_path}."
        raise UsageError(msg)
    small_dataset = _small_dataset(workspace, name, raw, say)
    if small_dataset:  # fold 'all' only: a cascade needs every case predicted by a fold that did not train on it
        options = replace(options, folds=("all",))  # type: ignore[arg-type]
        cascaded = [c for c in present if plans.configuration(c).previous_stage is not None]
        present = [c for c in present if c not in cascaded]
        summary.skipped_configurations += cascaded
        summary.configurations = present
        for c in cascaded:
            say("plan", f"{c}: skipped (a cascade needs cross-validation predictions of its first stage)")
    present, added = with_previous_stages(plans, present)
    summary.configurations = present
    for extra in added:
        say("plan", f"{extra}: added (a cascade takes its predictions as input)")
    say("preprocess", f"configurations {', '.join(present)}")
    preprocess(workspace, name, plans, present, workers=options.workers, progress=options.progress)
    cascades = previous_stages(plans, present)
    folds = folds_to_train(workspace, name, plans, present, options.folds)
    for lowres in set(cascades.values()):
        if set(folds[lowres]) != set(options.folds):
            say("plan", f"{lowres}: training folds {', '.join(map(str, folds[lowres]))} (the cascade needs a "
                        "prediction of every case from the fold where it is a validation case)")
    _train_all(workspace, name, plans.plans_name, present, options, summary, say, folds=folds, cascades=cascades,
               ndims={c: plans.configuration(c).ndim for c in present}, submit=submit, started=started)
    if summary.failed:
        details = "; ".join(f"{k}: {v}" for k, v in summary.failed.items())
        msg = f"{len(summary.failed)} training job(s) failed ({details}). Rerun to resume."
        raise AutounetError(msg)
    if small_dataset:
        say("find-best", "skipped: fold 'all' has no validation cases, so there is nothing to compare or report; "
                         f"predict with `autounet predict -d {name} -c CONFIG -f all`")
        return summary
    say("find-best", "comparing configurations and ensembles by cross-validation")
    summary.information = find_best(workspace, name, configurations=present, plans=(plans.plans_name,),
                                    folds=options.folds, workers=options.workers, progress=options.progress)
    say("report", "writing the validation report")
    summary.report = build_report(workspace, name)
    return summary


def _small_dataset(workspace: Workspace, name: str, raw: RawDataset, say: StepCallback) -> bool:
    """Fewer than 5 labelled cases and no hand-written ``splits_final.json``: train fold ``all`` (and say so)."""
    from autounet.dataset import small

    labelled = sum(1 for files in raw.cases.values() if files.label is not None)
    if not small.is_small(labelled) or workspace.splits_file(name).is_file():
        return False
    say("train", f"only {labelled} training case(s), fewer than the {small.MIN_CASES_FOR_CV} that 5-fold "
                 "cross-validation needs: training fold 'all' (every case, no validation). For a validated model "
                 f"write your own split to {workspace.splits_file(name)} and run again.")
    return True


def _job_key(configuration: str, fold: int) -> str:
    return f"{configuration}/fold_{fold}"


def _train_all(workspace: Workspace, name: str, plans_name: str, configurations: Sequence[str],
               options: RunOptions, summary: RunSummary, say: StepCallback, *,
               folds: Mapping[str, Sequence[int]], cascades: Mapping[str, str], ndims: Mapping[str, int],
               submit: Submit | None = None, started: float | None = None) -> None:
    """Train and validate every fold through ``submit``; cascade folds wait for all folds of their previous stage.

    ``ndims`` gives each configuration's spatial dimensionality (the short budget differs for 2D and 3D).
    """
    trainer = options.training_config().recipe.trainer_name  # the same for 2D and 3D
    feeds = set(cascades.values())
    todo = []
    for configuration in configurations:
        for fold in folds[configuration]:
            key = _job_key(configuration, fold)
            if _fold_complete(workspace, name, configuration, fold, plans_name, trainer) and (
                    configuration not in feeds or not pending_next_stage_cases(
                        workspace, name, configuration, fold, plans_name=plans_name, trainer=trainer)):
                summary.reused.append(key)
                continue
            todo.append((configuration, fold))
    keys = {_job_key(c, f) for c, f in todo}
    seconds = _time_shares(options, todo, ndims, started, say) if todo else {}
    jobs = []
    for configuration, fold in todo:
        previous = cascades.get(configuration)
        waits = [_job_key(previous, p) for p in folds[previous]] if previous else []
        config = options.training_config(ndims[configuration])
        job = TrainingJob(workspace=workspace, dataset=name, configuration=configuration, fold=fold,
                          recipe=config.recipe, plans_name=plans_name, resume="auto",
                          validation=ValidationOptions(workers=options.workers),
                          time_budget=seconds.get((configuration, fold)))
        jobs.append(Job(_job_key(configuration, fold), depends_on=tuple(k for k in waits if k in keys),
                        payload=(job, config.runtime)))
    if summary.reused:
        say("train", f"already done: {', '.join(summary.reused)}")
    if not jobs:
        return

    def done(job: Job, future: Future[Any]) -> None:
        result: FoldResult = future.result()
        report = result.next_stage
        if report is not None:
            say("cascade", f"{job.key}: {len(report.written)} next-stage prediction(s) written "
                           f"({report.seconds:.1f} s), {len(report.skipped)} up to date")
        say("train", f"{job.key} done")

    executor = current_executor()
    if executor is not None and is_dask(executor):  # --cluster: every training a Dask task needing one GPU
        device = options.devices[0] if len(options.devices) == 1 else "auto"
        result = run_jobs_on_dask(executor, jobs, functools.partial(_train_job_on_worker, device),
                                  resources=options.cluster_resources,
                                  on_done=lambda key, exc: say("train", f"{key} {'done' if exc is None else 'failed'}"))
    else:
        with _submitter(submit, len(options.devices)) as send:
            def start(job: Job, device: str) -> Future[Any]:
                training_job, runtime = cast("tuple[TrainingJob, RuntimeSettings]", job.payload)
                say("train", f"{job.key} on {device}")
                return send(training_job, replace(runtime, device=device))

            result = run_jobs(jobs, list(options.devices), start, on_done=done)
    summary.trained.extend(result.finished)
    summary.failed.update({k: str(v) for k, v in result.failed.items()})
    summary.failed.update({k: "skipped: a job it depends on failed" for k in result.skipped})


@contextmanager
def _submitter(submit: Submit | None, devices: int) -> Iterator[Submit]:
    """The given ``submit``, else inline for one device and one spawned process per device for several."""
    if submit is not None:
        yield submit
    elif devices == 1:
        yield submit_inline
    else:
        with ProcessSubmitter(devices) as pool:
            yield pool


#: share of a run's time budget kept for find-best and the report
FINAL_STEPS_SHARE = 0.05


def _time_shares(options: RunOptions, todo: Sequence[tuple[str, int]], ndims: Mapping[str, int],
                 started: float | None, say: StepCallback) -> dict[tuple[str, int], float]:
    """``--time-budget`` hook: each training's seconds (the run's budget left, divided; or the short budget)."""
    from autounet.training import time_budget as tb

    if not options.timed:
        return {}
    if options.time_budget is None:
        say("train", f"short budget: {tb.format_duration(tb.SHORT_BUDGET_SECONDS)} per training (training and "
                     "final validation), the schedule derived from iteration times measured here")
        return {job: tb.SHORT_BUDGET_SECONDS for job in todo}
    spent = time.monotonic() - started if started is not None else 0.0
    left = (options.time_budget - spent) * (1 - FINAL_STEPS_SHARE)
    if left <= 0:
        msg = (f"The time budget of {tb.format_duration(options.time_budget)} was used up before training "
               f"({tb.format_duration(spent)} for verify, plan and preprocess).")
        raise UsageError(msg)
    weights = {c: 2.0 for c in ndims if ndims[c] == 3}
    shares = tb.split_budget(left, list(todo), weights=weights, parallel=len(options.devices))
    say("train", f"{tb.describe_split(shares, left)}; {tb.format_duration(spent)} already spent, "
                 f"{int(FINAL_STEPS_SHARE * 100)} % kept for find-best and the report")
    return shares


def _train_job_on_worker(device: str, job: Job) -> None:
    """One training job as a Dask task: train, validate and write next-stage inputs on the worker's device."""
    training_job, runtime = cast("tuple[TrainingJob, RuntimeSettings]", job.payload)
    run_training(training_job, runtime=replace(runtime, device=device))


def _fold_complete(workspace: Workspace, name: str, configuration: str, fold: int, plans_name: str,
                   trainer: str) -> bool:
    model_dir = workspace.model_dir(name, configuration, plans_name=plans_name, trainer=trainer)
    trained = (model_dir / fold_dir_name(fold) / FINAL).is_file()
    if str(fold) == "all":  # nothing to validate
        return trained
    return trained and is_validated(workspace, name, configuration, fold, plans_name=plans_name, trainer=trainer)
