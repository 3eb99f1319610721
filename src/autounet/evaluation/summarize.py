"""Aggregate per-case metrics into an :class:`EvaluationSummary`, and write the per-case CSV.

- ``mean[key][metric]``: mean over cases ignoring NaN (the reference's ``nanmean``), so cases where a metric is
  undefined (both masks empty for Dice/IoU/NSD; either empty for HD95) do not count; a key with no defined value
  gets NaN.
- ``foreground_mean[metric]``: mean of the keys' means, ignoring keys whose mean is NaN (the reference uses a
  plain mean, so one class that is empty everywhere makes its overall score NaN; §12.13). Keys ``"0"`` are
  skipped as in the reference.
- ``nan_cases[key][metric]``: number of cases where the metric is NaN, so that the NaN handling is visible.
"""

from __future__ import annotations

import csv
import io
import math
import os
from collections.abc import Sequence

import numpy as np

from autounet._atomic import write_bytes_atomic
from autounet.schemas.results import ALL_METRICS, CaseResult, EvaluationSummary

NAN_METRICS = ("Dice", "IoU", "NSD", "HD95")


def _nanmean(values: Sequence[float]) -> float:
    """Mean of the non-NaN values; NaN when there are none (no warning)."""
    finite = [float(v) for v in values if not math.isnan(float(v))]
    return float(np.mean(finite)) if finite else float("nan")


def summarize(cases: Sequence[CaseResult], labels: Sequence[str], *, nsd_tolerance_mm: float | None = None,
              ignore_label: int | None = None) -> EvaluationSummary:
    """Build the summary of ``cases`` (already in output order) over the keys ``labels``."""
    present = [m for m in ALL_METRICS if cases and all(m in c.metrics[k].to_dict() for c in cases for k in labels)]
    mean: dict[str, dict[str, float]] = {}
    nan_cases: dict[str, dict[str, int]] = {}
    for key in labels:
        rows = [c.metrics[key].to_dict() for c in cases]
        mean[key] = {m: _nanmean([r[m] for r in rows]) for m in present}
        nan_cases[key] = {m: sum(1 for r in rows if math.isnan(float(r[m]))) for m in NAN_METRICS if m in present}
    fg_keys = [k for k in labels if k != "0"]
    foreground_mean = {m: _nanmean([mean[k][m] for k in fg_keys]) for m in present}
    return EvaluationSummary(labels=tuple(labels), metric_per_case=tuple(cases), mean=mean,
                             foreground_mean=foreground_mean, nan_cases=nan_cases,
                             nsd_tolerance_mm=nsd_tolerance_mm, ignore_label=ignore_label)


def per_case_csv(summary: EvaluationSummary) -> str:
    """One row per case and label/region: ``case,label,Dice,IoU,TP,FP,FN,TN,n_pred,n_ref[,NSD,HD95],...``."""
    metrics = [m for m in ALL_METRICS if m in summary.foreground_mean]
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["case", "label", *metrics, "prediction_file", "reference_file"])
    for case in summary.metric_per_case:
        for key in summary.labels:
            values = case.metrics[key].to_dict()
            writer.writerow([case.case, key, *(_fmt(values[m]) for m in metrics),
                             case.prediction_file, case.reference_file])
    return buf.getvalue()


def _fmt(value: float | int) -> str:
    if isinstance(value, int):
        return str(value)
    return "NaN" if math.isnan(value) else repr(float(value))


def write_per_case_csv(path: str | os.PathLike[str], summary: EvaluationSummary) -> None:
    """Write :func:`per_case_csv` atomically."""
    write_bytes_atomic(path, per_case_csv(summary).encode("utf-8"))
