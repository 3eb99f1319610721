"""The closing summary of ``autounet run``: what was done, the chosen model, its cross-validation scores."""

from __future__ import annotations

import math
from pathlib import Path

from autounet.evaluation import load_summary
from autounet.pipeline.run import RunSummary
from autounet.workspace import SUMMARY_JSON


def winner_nsd(summary: RunSummary) -> float:
    """Mean foreground NSD of the chosen model's cross-validation (NaN when unavailable)."""
    info = summary.information
    if info is None:
        return math.nan
    path = Path(info.source_folder) / SUMMARY_JSON
    if not path.is_file():
        return math.nan
    return float(load_summary(path).foreground_mean.get("NSD", math.nan))


def format_summary(summary: RunSummary) -> str:
    """Human-readable lines for the end of a run."""
    lines = [f"dataset: {summary.dataset_name} (plans {summary.plans_name})",
             f"configurations: {', '.join(summary.configurations)}"]
    if summary.skipped_configurations:
        lines.append(f"skipped configurations: {', '.join(summary.skipped_configurations)}")
    lines.append(f"trained now: {', '.join(summary.trained) or 'nothing'}")
    if summary.reused:
        lines.append(f"already done before: {', '.join(summary.reused)}")
    info = summary.information
    if info is not None:
        lines.append(f"chosen model: {info.best}")
        lines.append(f"cross-validation Dice (mean foreground): {info.result_on_crossval_pre_pp:.4f} "
                     f"(after postprocessing {info.result_on_crossval_post_pp:.4f})")
        nsd = winner_nsd(summary)
        if not math.isnan(nsd):
            lines.append(f"cross-validation NSD ({info.nsd_tolerance_mm} mm): {nsd:.4f}")
        for name, score in info.all_results.items():
            lines.append(f"  {name}: Dice {score:.4f}")
    if summary.report is not None:
        lines.append(f"report: {summary.report}")
    return "\n".join(lines)
