"""Merge the validation predictions of a trained model's folds into one folder and evaluate it (§9.2)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from autounet.errors import DatasetError
from autounet.evaluation.folder import DEFAULT_NSD_TOLERANCE_MM, evaluate
from autounet.schemas.results import EvaluationSummary
from autounet.workspace import DATASET_JSON, PLANS_JSON, SUMMARY_JSON, VALIDATION_DIR, crossval_dir_name, fold_dir_name


def fold_of_cases(model_dir: str | os.PathLike[str], folds: Sequence[int], file_ending: str) -> dict[str, int]:
    """Case id -> the fold whose validation predicted it; raises ``DatasetError`` for gaps and overlaps."""
    model_dir = Path(model_dir)
    out: dict[str, int] = {}
    for fold in folds:
        folder = model_dir / fold_dir_name(fold) / VALIDATION_DIR
        if not folder.is_dir():
            msg = (f"{model_dir.name}: fold {fold} has no validation predictions ({folder} is missing). Train and "
                   "validate every fold first.")
            raise DatasetError(msg)
        names = sorted(f.name for f in folder.iterdir() if f.name.endswith(file_ending) and not f.name.startswith("."))
        if not names:
            msg = f"{model_dir.name}: {folder} holds no predictions ending with {file_ending!r}."
            raise DatasetError(msg)
        for name in names:
            case = name[: -len(file_ending)]
            if case in out:
                msg = (f"{model_dir.name}: case {case} was predicted by the validation of folds {out[case]} and "
                       f"{fold}; the cross-validation folds must not overlap.")
                raise DatasetError(msg)
            out[case] = fold
    return out


def accumulate_crossval(model_dir: str | os.PathLike[str], ref_dir: str | os.PathLike[str], *, labels: Any,
                        file_ending: str, folds: Sequence[int] = (0, 1, 2, 3, 4),
                        output_dir: str | os.PathLike[str] | None = None,
                        nsd_tolerance_mm: float | None = DEFAULT_NSD_TOLERANCE_MM, workers: int = 1,
                        progress: bool = False) -> tuple[Path, EvaluationSummary]:
    """Copy every fold's validation predictions into ``crossval_results_folds_<folds>`` and evaluate them.

    The merged folder (default: inside ``model_dir``) is recreated; it receives ``plans.json``, ``dataset.json``
    and ``summary.json`` (+ the per-case CSV). Returns the folder and its summary.
    """
    model_dir = Path(model_dir)
    merged = Path(output_dir) if output_dir is not None else model_dir / crossval_dir_name(tuple(folds))
    case_folds = fold_of_cases(model_dir, folds, file_ending)
    if merged.exists():
        shutil.rmtree(merged)
    merged.mkdir(parents=True)
    for name in (PLANS_JSON, DATASET_JSON):
        if (model_dir / name).is_file():
            shutil.copyfile(model_dir / name, merged / name)
    for case, fold in case_folds.items():
        name = f"{case}{file_ending}"
        shutil.copyfile(model_dir / fold_dir_name(fold) / VALIDATION_DIR / name, merged / name)
    summary = evaluate(merged, ref_dir, labels=labels, file_ending=file_ending, nsd_tolerance_mm=nsd_tolerance_mm,
                       workers=workers, progress=progress, output=merged / SUMMARY_JSON)
    return merged, summary
