"""The main job: stage APIs chained end to end (``autounet run``), the final validation of trained folds, and the
device scheduler for concurrent trainings."""

from __future__ import annotations

from autounet.pipeline.run import BUDGETS, RunOptions, RunSummary, run
from autounet.pipeline.scheduler import Job, ScheduleResult, run_jobs
from autounet.pipeline.summary import format_summary
from autounet.pipeline.validation import ValidationOptions, is_validated, validate_fold

__all__ = ["BUDGETS", "Job", "RunOptions", "RunSummary", "ScheduleResult", "ValidationOptions", "format_summary",
           "is_validated", "run", "run_jobs", "validate_fold"]
