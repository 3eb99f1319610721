"""The main job: stage APIs chained end to end (``autounet run``), the one way to train a fold
(:func:`run_training`: train, final validation, a cascade's next-stage inputs), and the device scheduler."""

from __future__ import annotations

from autounet.pipeline.run import RunOptions, RunSummary, run
from autounet.pipeline.scheduler import Job, ScheduleResult, run_jobs
from autounet.pipeline.summary import format_summary
from autounet.pipeline.training import (
           FoldResult,
           ProcessSubmitter,
           TrainingJob,
           run_training,
           submit_inline,
)
from autounet.pipeline.validation import ValidationOptions, is_validated, validate_fold
from autounet.schemas.training import BUDGETS

__all__ = ["BUDGETS", "FoldResult", "Job", "ProcessSubmitter", "RunOptions", "RunSummary", "ScheduleResult",
           "TrainingJob", "ValidationOptions", "format_summary", "is_validated", "run", "run_jobs", "run_training",
           "submit_inline", "validate_fold"]
