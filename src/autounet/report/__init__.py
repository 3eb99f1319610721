"""Static HTML validation report (``autounet report``): :func:`build_report`."""

from autounet.report.build import build_report, render
from autounet.report.stats import Suitability, fold_scores, mean_sd_over_folds, suitability

__all__ = ["Suitability", "build_report", "fold_scores", "mean_sd_over_folds", "render", "suitability"]
