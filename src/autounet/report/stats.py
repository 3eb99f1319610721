"""Numbers behind the validation report: per-fold scores, the cross-validation table, dataset suitability.

Per-fold scores are computed from a merged cross-validation summary and the fold each case was validated in:
per fold and label the mean over that fold's cases (NaN cases left out), and the fold's foreground score is the
mean over labels (NaN labels left out), as in the summaries. "Mean ± SD over folds" uses the sample SD (ddof 1).

Dataset suitability ("nnU-Net Revisited"): with the trained configurations as methods and ``s[m, f]`` the
score of method ``m`` in fold ``f``,

- ``sd_within[m]`` = SD over folds of ``s[m, :]``; the pooled within-method SD is ``sqrt(mean_m sd_within[m]²)``;
- ``sd_between`` = SD over methods of the method means ``mean_f s[m, f]``;
- ``ratio = sd_between / pooled sd_within``. A ratio below 1 means the methods differ less than one method's
  scores vary between folds: the dataset cannot rank them reliably.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from autounet.schemas.results import EvaluationSummary

FOREGROUND = "foreground"


def _nanmean(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan


def _sd(values: Sequence[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.std(finite, ddof=1)) if len(finite) > 1 else math.nan


def fold_scores(summary: EvaluationSummary, case_folds: Mapping[str, int], metric: str) -> dict[int, dict[str, float]]:
    """``{fold: {label_key or "foreground": score}}`` for one metric (cases without a fold are ignored)."""
    folds = sorted({case_folds[c.case] for c in summary.metric_per_case if c.case in case_folds})
    out: dict[int, dict[str, float]] = {}
    for fold in folds:
        cases = [c for c in summary.metric_per_case if case_folds.get(c.case) == fold]
        per_label = {}
        for key in summary.labels:
            values = [float(c.metrics[key].to_dict().get(metric, math.nan)) for c in cases]
            per_label[key] = _nanmean(values)
        per_label[FOREGROUND] = _nanmean([per_label[k] for k in summary.labels if k != "0"])
        out[fold] = per_label
    return out


@dataclass(frozen=True)
class MeanSD:
    """Mean and sample SD over folds."""

    mean: float
    sd: float

    def text(self, digits: int = 3) -> str:
        """``0.912 ± 0.011`` (``n/a`` for NaN)."""
        if math.isnan(self.mean):
            return "n/a"
        sd = "n/a" if math.isnan(self.sd) else f"{self.sd:.{digits}f}"
        return f"{self.mean:.{digits}f} ± {sd}"


def mean_sd_over_folds(scores: Mapping[int, Mapping[str, float]], key: str) -> MeanSD:
    """Mean ± SD over folds of one label (or ``"foreground"``)."""
    values = [s[key] for s in scores.values() if key in s]
    return MeanSD(_nanmean(values), _sd(values))


@dataclass(frozen=True)
class Suitability:
    """Spread of fold scores within methods versus between methods."""

    methods: tuple[str, ...]
    fold_scores: dict[str, dict[int, float]]
    sd_within: dict[str, float]
    pooled_sd_within: float
    sd_between: float

    @property
    def ratio(self) -> float:
        """``sd_between / pooled_sd_within`` (NaN when either is undefined or the pooled SD is 0)."""
        if math.isnan(self.sd_between) or math.isnan(self.pooled_sd_within) or self.pooled_sd_within == 0:
            return math.nan
        return self.sd_between / self.pooled_sd_within

    def verdict(self) -> str:
        """One sentence interpreting the ratio."""
        r = self.ratio
        if math.isnan(r):
            return "Needs at least two methods with at least two folds each."
        if r < 1:
            return (f"Ratio {r:.2f} < 1: the configurations differ less than one configuration's scores vary "
                    "between folds; this dataset cannot rank them reliably.")
        return (f"Ratio {r:.2f} ≥ 1: the differences between configurations exceed the fold-to-fold spread; "
                "the ranking is informative (still check per-fold consistency).")


def suitability(method_scores: Mapping[str, Mapping[int, float]]) -> Suitability:
    """Suitability statistics from ``{method: {fold: score}}``."""
    methods = tuple(method_scores)
    sd_within = {m: _sd(list(method_scores[m].values())) for m in methods}
    variances = [v * v for v in sd_within.values() if not math.isnan(v)]
    pooled = math.sqrt(float(np.mean(variances))) if variances else math.nan
    means = [_nanmean(list(method_scores[m].values())) for m in methods]
    return Suitability(methods=methods, fold_scores={m: dict(method_scores[m]) for m in methods},
                       sd_within=sd_within, pooled_sd_within=pooled, sd_between=_sd(means))


def case_scores(summary: EvaluationSummary) -> dict[str, float]:
    """Per case the mean Dice over labels (NaN labels left out)."""
    return {c.case: _nanmean([c.metrics[k].dice for k in summary.labels if k != "0"])
            for c in summary.metric_per_case}


def best_and_worst(scores: Mapping[str, float], n: int) -> tuple[list[str], list[str]]:
    """The ``n`` best and ``n`` worst cases by score (NaN cases excluded; ties by case id)."""
    ranked = sorted((c for c in scores if not math.isnan(scores[c])), key=lambda c: (-scores[c], c))
    n = max(0, min(n, len(ranked) // 2 if len(ranked) > 1 else len(ranked)))
    return ranked[:n], list(reversed(ranked[-n:])) if n else []
