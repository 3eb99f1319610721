"""Average saved probabilities of several models and write segmentations (§9.3).

Per case the members' float32 probabilities are summed in member order and divided by the number of members
(the reference's arithmetic), then turned into a label map with the stored label semantics (argmax in label
mode, ``> 0.5`` per region in ``regions_class_order`` in region mode) and written with the source geometry.
Unlike the reference, the output folder also receives ``plans.json`` and ``dataset.json`` from the first member
that has them (§12.12) and an ``ensemble.json`` record of what was averaged.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from autounet._log import get_logger
from autounet._parallel import map_cases
from autounet.ensembling.probabilities import (
    probability_cases,
    read_probabilities,
    read_probability_record,
    record_geometry,
    record_labels,
    write_probabilities,
)
from autounet.errors import DatasetError, UsageError
from autounet.evaluation.folder import write_label_map
from autounet.schemas._base import make_provenance
from autounet.schemas.results import EnsembleSpec, ProbabilityRecord, save_ensemble_spec
from autounet.workspace import DATASET_JSON, ENSEMBLE_JSON, PLANS_JSON, VALIDATION_DIR, fold_dir_name

log = get_logger(__name__)


@dataclass(frozen=True)
class _CaseTask:
    case: str
    sources: tuple[Path, ...]
    output_dir: Path
    save_probabilities: bool


def average_probabilities(case: str, sources: Sequence[Path]) -> tuple[np.ndarray, ProbabilityRecord]:
    """Mean of one case's probabilities over ``sources`` (folders), and the first member's record."""
    total: np.ndarray | None = None
    first: ProbabilityRecord | None = None
    for folder in sources:
        probs, record = read_probabilities(folder, case)
        if total is None or first is None:
            total, first = probs.copy(), record
            continue
        if probs.shape != total.shape:
            msg = (f"Case {case}: probabilities in {folder} have shape {probs.shape} but those in {sources[0]} "
                   f"have {total.shape}; the members must predict the same images.")
            raise DatasetError(msg)
        if record.labels != first.labels:
            msg = f"Case {case}: {folder} and {sources[0]} use different labels; they cannot be ensembled."
            raise DatasetError(msg)
        total += probs
    if total is None or first is None:
        msg = f"Case {case}: no members to average."
        raise UsageError(msg)
    total /= np.float32(len(sources))
    return total, first


def _ensemble_case(task: _CaseTask) -> str:
    probs, record = average_probabilities(task.case, task.sources)
    labels, geometry = record_labels(record), record_geometry(record)
    seg = labels.to_segmentation(probs)
    write_label_map(seg, task.output_dir / f"{task.case}{record.file_ending}", geometry)
    if task.save_probabilities:
        write_probabilities(task.output_dir, task.case, probs, geometry=geometry, labels=labels,
                            file_ending=record.file_ending)
    return task.case


def _copy_metadata(sources: Sequence[Path], output_dir: Path) -> None:
    for name in (PLANS_JSON, DATASET_JSON):
        for folder in sources:
            if (folder / name).is_file():
                shutil.copyfile(folder / name, output_dir / name)
                break


def _run(case_sources: dict[str, tuple[Path, ...]], output_dir: Path, *, members: Sequence[str],
         metadata_from: Sequence[Path], folds: tuple[int, ...] | None, save_probabilities: bool, workers: int,
         progress: bool) -> EnsembleSpec:
    output_dir.mkdir(parents=True, exist_ok=True)
    tasks = [_CaseTask(c, s, output_dir, save_probabilities) for c, s in sorted(case_sources.items())]
    map_cases(_ensemble_case, tasks, workers=workers, progress=progress, desc="ensemble")
    first_case = tasks[0]
    ending = read_probability_record(first_case.sources[0], first_case.case).file_ending
    _copy_metadata(metadata_from, output_dir)
    spec = EnsembleSpec(members=tuple(members), cases=tuple(sorted(case_sources)), file_ending=ending, folds=folds,
                        probabilities_saved=save_probabilities)
    save_ensemble_spec(output_dir / ENSEMBLE_JSON, spec, provenance=make_provenance("autounet.ensembling"))
    return spec


def ensemble(input_dirs: Sequence[str | os.PathLike[str]], output_dir: str | os.PathLike[str], *,
             save_probabilities: bool = False, workers: int = 1, progress: bool = False) -> EnsembleSpec:
    """Average the saved probabilities of the same cases in ``input_dirs`` and write segmentations.

    Args:
        input_dirs: prediction folders written with saved probabilities (``<case>.npz`` + ``<case>.meta.json``).
        output_dir: where the segmentations (and ``plans.json``, ``dataset.json``, ``ensemble.json``) go.
        save_probabilities: also save the averaged probabilities.
        workers: worker processes.
        progress: show a progress bar.

    Raises:
        DatasetError: a folder has no probabilities, or the folders do not hold the same cases.
    """
    folders = [Path(d) for d in input_dirs]
    if not folders:
        msg = "ensemble needs at least one input folder."
        raise UsageError(msg)
    per_folder = {f: set(probability_cases(f)) for f in folders}
    for folder, cases in per_folder.items():
        if not folder.is_dir():
            msg = f"Input folder not found: {folder}"
            raise DatasetError(msg)
        if not cases:
            msg = (f"No saved probabilities (<case>.npz with <case>.meta.json) in {folder}. Predict with "
                   "--save-probabilities.")
            raise DatasetError(msg)
    reference = per_folder[folders[0]]
    for folder in folders[1:]:
        if per_folder[folder] != reference:
            only_a = sorted(reference - per_folder[folder])[:5]
            only_b = sorted(per_folder[folder] - reference)[:5]
            msg = (f"{folders[0]} and {folder} hold different cases (only in the first: {only_a}; only in the "
                   f"second: {only_b}). Every input folder must hold the same cases.")
            raise DatasetError(msg)
    if len(folders) == 1:
        log.warning("Only one input folder: its probabilities are converted, not averaged.")
    sources = {case: tuple(folders) for case in reference}
    return _run(sources, Path(output_dir), members=[str(f.resolve()) for f in folders], metadata_from=folders,
                folds=None, save_probabilities=save_probabilities, workers=workers, progress=progress)


def validation_probability_folders(model_dir: Path, folds: Sequence[int]) -> dict[str, Path]:
    """Case id -> the ``fold_k/validation`` folder holding its saved probabilities, over ``folds``."""
    found: dict[str, Path] = {}
    for fold in folds:
        folder = model_dir / fold_dir_name(fold) / VALIDATION_DIR
        if not folder.is_dir():
            msg = f"{model_dir.name}: fold {fold} has no validation folder ({folder}). Train and validate that fold."
            raise DatasetError(msg)
        cases = probability_cases(folder)
        if not cases:
            msg = (f"{model_dir.name}: {folder} has no saved probabilities; ensembling needs them (train or "
                   "validate with probability saving, the reference's --npz).")
            raise DatasetError(msg)
        for case in cases:
            if case in found:
                msg = (f"{model_dir.name}: case {case} was validated in two folds ({found[case].parent.name} and "
                       f"{folder.parent.name}); the folds must not overlap.")
                raise DatasetError(msg)
            found[case] = folder
    return found


def ensemble_crossvalidation(model_dirs: Sequence[str | os.PathLike[str]], output_dir: str | os.PathLike[str], *,
                             folds: Sequence[int], workers: int = 1, progress: bool = False,
                             save_probabilities: bool = False) -> EnsembleSpec:
    """Ensemble the cross-validation probabilities of trained models (each may use its own splits).

    The output folder is recreated. Every model must have validated the same set of cases over ``folds``.
    """
    models = [Path(d) for d in model_dirs]
    per_model = {m: validation_probability_folders(m, folds) for m in models}
    first = set(per_model[models[0]])
    for model in models[1:]:
        cases = set(per_model[model])
        if cases != first:
            diff = sorted(first ^ cases)[:5]
            msg = (f"{models[0].name} and {model.name} validated different cases over folds {list(folds)} "
                   f"(e.g. {diff}); they cannot be ensembled.")
            raise DatasetError(msg)
    out = Path(output_dir)
    if out.exists():
        shutil.rmtree(out)
    sources = {case: tuple(per_model[m][case] for m in models) for case in first}
    return _run(sources, out, members=[m.name for m in models], metadata_from=models, folds=tuple(folds),
                save_probabilities=save_probabilities, workers=workers, progress=progress)
