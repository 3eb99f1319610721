"""The one way to train a fold: train, run its final validation, and write a cascade's next-stage inputs.

:func:`run_training` is called by ``autounet train`` (``cli/train.py``), by :func:`autounet.train` (``api.py``) and
by ``autounet run`` (:mod:`autounet.pipeline.run`), always in a Python process, never by re-entering the CLI.
It lives in the pipeline package because the final validation uses inference and evaluation, which come after
training in the import order (``tests/unit/test_import_contract.py``).

Several trainings at once go through a *submit* function ``submit(job, runtime) -> Future[FoldResult]``:
:func:`submit_inline` (one device: run now, in this process), :class:`ProcessSubmitter` (one spawned process per
device) or any executor with the same signature, e.g. a Dask client::

    submit = lambda job, runtime: client.submit(run_training, job, runtime=runtime, pure=False)

:class:`TrainingJob` and :class:`FoldResult` are plain picklable records for that purpose.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType

from autounet._log import get_logger
from autounet.errors import AutounetError, UsageError
from autounet.pipeline.cascade import NextStageReport, write_next_stage_predictions
from autounet.pipeline.validation import ValidationOptions, validate_fold
from autounet.planning.store import read_plans_file
from autounet.schemas.training import RuntimeSettings, TrainingRecipe
from autounet.training import FINAL, train
from autounet.training.checkpoint import find_resume_checkpoint
from autounet.workspace import DEFAULT_PLANS_NAME, Workspace, fold_dir_name

log = get_logger(__name__)

RESUME_MODES = ("no", "yes", "auto")


@dataclass(frozen=True)
class TrainingJob:
    """What to do for one fold of one configuration.

    Attributes:
        workspace: the workspace (plans and preprocessed data must exist).
        dataset: ``DatasetXXX_Name``.
        configuration: a configuration of the plans (``2d``, ``3d_fullres``, ...).
        fold: 0..4 (higher: random 80:20 split) or ``"all"``.
        recipe: what is trained.
        plans_name: plans identifier.
        resume: ``no`` (fresh; refuses to overwrite checkpoints unless ``overwrite``), ``yes`` (continue the latest
            checkpoint) or ``auto`` (a finished fold is not trained again, an interrupted one resumes; the pipeline's).
        continue_epochs: train N epochs more than the stored run had (implies resume).
        overwrite: start over even if the fold folder holds checkpoints.
        train: ``False`` skips training (only the final validation of a trained fold).
        validation: how the final validation runs; ``None`` skips it (always skipped for fold ``all``).
        next_stage: write the next stage's inputs when the configuration feeds a cascade.
        time_budget: seconds for training and the final validation: the schedule is derived from measured
            iteration times (:mod:`autounet.training.time_budget`); ``None`` keeps the recipe's schedule.
    """

    workspace: Workspace
    dataset: str
    configuration: str
    fold: int | str
    recipe: TrainingRecipe = field(default_factory=TrainingRecipe)
    plans_name: str = DEFAULT_PLANS_NAME
    resume: str = "no"
    continue_epochs: int = 0
    overwrite: bool = False
    train: bool = True
    validation: ValidationOptions | None = field(default_factory=ValidationOptions)
    next_stage: bool = True
    time_budget: float | None = None

    def __post_init__(self) -> None:
        if self.resume not in RESUME_MODES:
            raise UsageError(f"resume must be one of {', '.join(RESUME_MODES)}, got {self.resume!r}.")
        if not (self.fold == "all" or (isinstance(self.fold, int) and self.fold >= 0)):
            raise UsageError(f"fold must be a non-negative integer or 'all', got {self.fold!r}.")

    @property
    def key(self) -> str:
        """``<configuration>/fold_<fold>``."""
        return f"{self.configuration}/{fold_dir_name(self.fold)}"

    @property
    def fold_dir(self) -> Path:
        """``results/<Dataset>/<Trainer>__<Plans>__<Config>/fold_X``."""
        model_dir = self.workspace.model_dir(self.dataset, self.configuration, plans_name=self.plans_name,
                                             trainer=self.recipe.trainer_name)
        return model_dir / fold_dir_name(self.fold)


@dataclass
class FoldResult:
    """What :func:`run_training` did.

    Attributes:
        key: the job's key (``<configuration>/fold_<fold>``).
        fold_dir: the fold folder.
        trained: whether this call trained (``False``: already finished, or ``train=False``).
        validation_dice: mean foreground Dice of the final validation (``None``: not validated).
        next_stage: the next-stage report of a cascade's low-resolution fold (``None``: not applicable).
    """

    key: str
    fold_dir: Path
    trained: bool = False
    validation_dice: float | None = None
    next_stage: NextStageReport | None = None


def parse_fold(text: str | int) -> int | str:
    """``"all"`` or a non-negative integer (``UsageError`` otherwise)."""
    if text == "all" or isinstance(text, int):
        return text
    if not str(text).isdigit():
        raise UsageError(f"FOLD must be a non-negative integer or 'all', got {text!r}.")
    return int(text)


def run_training(job: TrainingJob, *, runtime: RuntimeSettings | None = None, distributed: bool = False,
                 main_process: bool = True) -> FoldResult:
    """Train ``job``'s fold, run its final validation, and write its next-stage inputs where a cascade needs them.

    Args:
        job: what to train and validate.
        runtime: how (device, loader threads, compile, AMP, seed, progress); default :class:`RuntimeSettings`.
        distributed: join the torchrun process group (one process per device).
        main_process: this is rank 0 (only it validates and writes the next stage's inputs).

    Raises:
        AutounetError: training, validation or the next-stage predictions failed (the message names the fold).
    """
    from autounet.schemas.training import TrainingConfig

    runtime = runtime or RuntimeSettings()
    result = FoldResult(key=job.key, fold_dir=job.fold_dir)
    if job.train and not (job.resume == "auto" and (job.fold_dir / FINAL).is_file()):
        resume = job.resume == "yes" or (job.resume == "auto" and job.fold_dir.is_dir()
                                          and find_resume_checkpoint(job.fold_dir) is not None)
        train(job.workspace, job.dataset, job.configuration, job.fold, config=TrainingConfig(job.recipe, runtime),
              plans_name=job.plans_name, resume=resume, continue_epochs=job.continue_epochs,
              overwrite=job.overwrite, distributed=distributed, time_budget=job.time_budget,
              budget_final_validation=job.validation is not None)
        result.trained = True
    if not main_process:
        return result
    trainer = job.recipe.trainer_name
    if job.validation is not None and job.fold != "all":
        options = replace(job.validation, device=runtime.device, progress=runtime.progress)
        summary = validate_fold(job.workspace, job.dataset, job.configuration, job.fold, plans_name=job.plans_name,
                                trainer=trainer, options=options)
        result.validation_dice = float(summary.score)
        log.debug("Validation of %s: mean foreground Dice %.4f", job.key, summary.score)
    plans = read_plans_file(job.workspace.plans_file(job.dataset, job.plans_name))
    if job.next_stage and plans.configuration(job.configuration).next_stage:
        report = write_next_stage_predictions(job.workspace, job.dataset, job.configuration, job.fold,
                                              plans_name=job.plans_name, trainer=trainer, device=runtime.device)
        if report.missing:
            msg = f"{job.key}: not preprocessed for the next stage: {', '.join(report.missing)}"
            raise AutounetError(msg)
        result.next_stage = report
    return result


Submit = Callable[[TrainingJob, RuntimeSettings], "Future[FoldResult]"]


def submit_inline(job: TrainingJob, runtime: RuntimeSettings) -> Future[FoldResult]:
    """Run the job now, in this process; the returned future is already done (with its result or error)."""
    future: Future[FoldResult] = Future()
    try:
        future.set_result(run_training(job, runtime=runtime))
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:  # noqa: BLE001 - handed to the caller through the future
        future.set_exception(exc)
    return future


class ProcessSubmitter:
    """``submit(job, runtime)`` in a pool of spawned processes (one per device); use as a context manager."""

    def __init__(self, processes: int) -> None:
        if processes < 1:
            raise UsageError(f"processes must be >= 1, got {processes}.")
        self._pool = ProcessPoolExecutor(max_workers=processes, mp_context=multiprocessing.get_context("spawn"))

    def __call__(self, job: TrainingJob, runtime: RuntimeSettings) -> Future[FoldResult]:
        return self._pool.submit(run_training, job, runtime=runtime)

    def __enter__(self) -> ProcessSubmitter:  # noqa: PYI034 - final class
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._pool.shutdown(wait=True, cancel_futures=kind is not None)


__all__ = [
    "RESUME_MODES",
    "FoldResult",
    "ProcessSubmitter",
    "Submit",
    "TrainingJob",
    "parse_fold",
    "run_training",
    "submit_inline",
]
