"""Datasets with fewer training cases than cross-validation folds: the warning and the ways forward.

Five-fold cross-validation needs at least five labelled cases. With fewer, verify and plan warn, ``train`` names
the two ways forward (fold ``all``, or a hand-written ``splits_final.json``) and ``autounet run`` trains fold
``all``.
"""

from __future__ import annotations

#: labelled cases needed for the default 5-fold cross-validation
MIN_CASES_FOR_CV = 5


def is_small(n_cases: int) -> bool:
    """Fewer labelled training cases than cross-validation folds."""
    return n_cases < MIN_CASES_FOR_CV


def advice(n_cases: int, *, splits_file: str | None = None, dataset: str = "DATASET") -> str:
    """What to do with ``n_cases`` (< 5) training cases, in one paragraph naming fold ``all`` and the split file."""
    where = splits_file or f"<workspace>/preprocessed/{dataset}/splits_final.json"
    return (f"only {n_cases} training case(s): 5-fold cross-validation needs at least {MIN_CASES_FOR_CV}. "
            f"Train on every case with fold 'all' (`autounet train {dataset} CONFIG all`; it has no validation "
            f"cases, and `autounet run` does this by itself), or write your own split to {where}: a JSON list "
            'with one {"train": [case ids], "val": [case ids]} object per fold, e.g. '
            '[{"train": ["case_a", "case_b", "case_c"], "val": ["case_d"]}], then train fold 0.')


__all__ = ["MIN_CASES_FOR_CV", "advice", "is_small"]
