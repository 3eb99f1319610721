"""Evaluation: per-case metrics (Dice, IoU, counts, NSD, HD95) and folder summaries (``summary.json`` + CSV).

Entry point: :func:`evaluate` (``autounet evaluate``).
"""

from autounet.evaluation.folder import (
    DEFAULT_NSD_TOLERANCE_MM,
    CasePair,
    evaluate,
    infer_file_ending,
    pair_cases,
    per_case_csv_path,
    resolve_labels,
    write_summary,
)
from autounet.evaluation.metrics import case_metrics, surface_metrics
from autounet.evaluation.summarize import summarize
from autounet.schemas.results import EvaluationSummary, load_summary

__all__ = [
    "DEFAULT_NSD_TOLERANCE_MM",
    "CasePair",
    "EvaluationSummary",
    "case_metrics",
    "evaluate",
    "infer_file_ending",
    "load_summary",
    "pair_cases",
    "per_case_csv_path",
    "resolve_labels",
    "summarize",
    "surface_metrics",
    "write_summary",
]
