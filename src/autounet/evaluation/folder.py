"""Evaluate a folder of predicted segmentations against a folder of references.

Pairing follows the reference (§8): every file in the prediction folder that ends with the file ending is paired
with the file of the same name in the reference folder; extra references are ignored unless ``strict``.
Cases are evaluated in worker processes; the summary lists them in sorted file-name order.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from autounet._log import get_logger
from autounet._parallel import map_cases
from autounet.errors import DatasetError, UsageError
from autounet.evaluation.metrics import case_metrics
from autounet.evaluation.summarize import summarize, write_per_case_csv
from autounet.io import READERS, ImageGeometry, read_segmentation, write_segmentation
from autounet.schemas._base import make_provenance
from autounet.schemas.results import CaseResult, EvaluationSummary, LabelOrRegion, keys_of, save_summary

log = get_logger(__name__)

#: Default NSD tolerance in mm (configurable everywhere; recorded in every summary).
DEFAULT_NSD_TOLERANCE_MM = 2.0


def _known_endings() -> tuple[str, ...]:
    """Every file ending a registered reader handles, longest first."""
    endings = {e for name in READERS.names() for e in READERS.get(name).endings}
    return tuple(sorted(endings, key=len, reverse=True))


@dataclass(frozen=True)
class CasePair:
    """One prediction file and its reference."""

    case: str
    prediction: Path
    reference: Path


@dataclass(frozen=True)
class _Task:
    pair: CasePair
    labels_or_regions: tuple[LabelOrRegion, ...]
    ignore_label: int | None
    nsd_tolerance_mm: float | None
    transform: Callable[[np.ndarray], np.ndarray] | None = None


def resolve_labels(labels: Any, ignore_label: int | None = None) -> tuple[tuple[LabelOrRegion, ...], int | None]:
    """Labels/regions to evaluate and the ignore label, from a ``LabelSpec`` or a list of labels/regions.

    A ``LabelSpec`` gives its foreground regions (region datasets) or foreground labels, and its ignore label
    unless ``ignore_label`` is given explicitly.
    """
    if hasattr(labels, "foreground_labels"):
        if getattr(labels, "has_regions", False):
            items = getattr(labels, "foreground_regions", None) or labels.regions
        else:
            items = labels.foreground_labels
        spec_ignore = getattr(labels, "ignore_label", None)
        ignore_label = spec_ignore if ignore_label is None else ignore_label
    else:
        items = labels
    try:
        out = tuple(tuple(int(x) for x in v) if isinstance(v, (tuple, list)) else int(v) for v in items)
    except (TypeError, ValueError) as exc:
        msg = f"Labels must be integers or tuples of integers (regions), got {items!r}."
        raise UsageError(msg) from exc
    if not out:
        msg = "No labels to evaluate: give at least one foreground label or region."
        raise UsageError(msg)
    return out, ignore_label


def infer_file_ending(folder: Path) -> str:
    """The segmentation file ending used in ``folder`` (the most common known ending)."""
    counts: Counter[str] = Counter()
    known = _known_endings()
    if not folder.is_dir():
        msg = f"Prediction folder not found: {folder} (give an existing folder of segmentations)."
        raise DatasetError(msg)
    for f in folder.iterdir():
        if f.is_file() and not f.name.startswith("."):
            ending = next((e for e in known if f.name.lower().endswith(e)), None)
            if ending is not None:
                counts[ending] += 1
    if not counts:
        msg = (f"No segmentation files in {folder} (known endings: {', '.join(known)}). "
               "Give the file ending explicitly.")
        raise DatasetError(msg)
    (best, n), *rest = counts.most_common()
    if rest and rest[0][1] == n:
        msg = (f"{folder} holds as many {best} as {rest[0][0]} files; give the file ending explicitly "
               "(--file-ending).")
        raise UsageError(msg)
    return best


def pair_cases(pred_dir: Path, ref_dir: Path, file_ending: str, *, strict: bool = False) -> list[CasePair]:
    """Pair predictions with references by file name; raise ``DatasetError`` for a missing reference."""
    for label, folder in (("Prediction", pred_dir), ("Reference", ref_dir)):
        if not folder.is_dir():
            msg = f"{label} folder not found: {folder}"
            raise DatasetError(msg)
    preds = sorted(f.name for f in pred_dir.iterdir()
                   if f.is_file() and f.name.endswith(file_ending) and not f.name.startswith("."))
    if not preds:
        msg = f"No predictions ending with {file_ending!r} in {pred_dir}."
        raise DatasetError(msg)
    missing = [n for n in preds if not (ref_dir / n).is_file()]
    if missing:
        shown = ", ".join(missing[:5]) + (" ..." if len(missing) > 5 else "")
        msg = f"{len(missing)} prediction(s) in {pred_dir} have no reference in {ref_dir}: {shown}"
        raise DatasetError(msg)
    if strict:
        refs = {f.name for f in ref_dir.iterdir() if f.is_file() and f.name.endswith(file_ending)}
        unpredicted = sorted(refs - set(preds))
        if unpredicted:
            shown = ", ".join(unpredicted[:5]) + (" ..." if len(unpredicted) > 5 else "")
            msg = f"{len(unpredicted)} reference(s) in {ref_dir} have no prediction in {pred_dir}: {shown}"
            raise DatasetError(msg)
    return [CasePair(case=n[: -len(file_ending)], prediction=(pred_dir / n).resolve(),
                     reference=(ref_dir / n).resolve()) for n in preds]


def read_label_map(path: Path) -> tuple[np.ndarray, ImageGeometry]:
    """A segmentation as ``(a0, a1, a2)`` plus its geometry (spacing in array axis order)."""
    seg, geometry = read_segmentation(path)
    return seg[0], geometry


def write_label_map(seg: np.ndarray, path: Path, geometry: ImageGeometry) -> None:
    """Write an ``(a0, a1, a2)`` label map with ``geometry`` (atomically, in the format of ``path``)."""
    write_segmentation(seg, path, geometry)


def evaluate_pair(pair: CasePair, labels_or_regions: Sequence[LabelOrRegion], *, ignore_label: int | None = None,
                  nsd_tolerance_mm: float | None = DEFAULT_NSD_TOLERANCE_MM,
                  transform: Callable[[np.ndarray], np.ndarray] | None = None) -> CaseResult:
    """Metrics of one prediction/reference pair (surface metrics with the reference's spacing).

    ``transform`` (picklable) is applied to the predicted label map first, e.g. post-processing steps.
    """
    ref, ref_geometry = read_label_map(pair.reference)
    pred, pred_geometry = read_label_map(pair.prediction)
    ref_spacing, pred_spacing = ref_geometry.spacing, pred_geometry.spacing
    if transform is not None:
        pred = transform(pred)
    if ref.shape != pred.shape:
        msg = (f"Case {pair.case}: prediction {pair.prediction} has shape {pred.shape} but reference "
               f"{pair.reference} has shape {ref.shape}.")
        raise DatasetError(msg)
    if not np.allclose(ref_spacing, pred_spacing, rtol=1e-3, atol=1e-5):
        log.warning("Case %s: prediction spacing %s differs from reference spacing %s; using the reference's.",
                    pair.case, pred_spacing, ref_spacing)
    metrics = case_metrics(ref, pred, labels_or_regions, spacing=ref_spacing, ignore_label=ignore_label,
                           nsd_tolerance_mm=nsd_tolerance_mm)
    return CaseResult(case=pair.case, prediction_file=str(pair.prediction), reference_file=str(pair.reference),
                      metrics=metrics)


def _run_task(task: _Task) -> CaseResult:
    return evaluate_pair(task.pair, task.labels_or_regions, ignore_label=task.ignore_label,
                         nsd_tolerance_mm=task.nsd_tolerance_mm, transform=task.transform)


def evaluate(pred_dir: str | os.PathLike[str], ref_dir: str | os.PathLike[str], *, labels: Any,
             file_ending: str | None = None, nsd_tolerance_mm: float | None = DEFAULT_NSD_TOLERANCE_MM,
             ignore_label: int | None = None, workers: int = 1, progress: bool = False,
             output: str | os.PathLike[str] | None = None, strict: bool = False,
             transform: Callable[[np.ndarray], np.ndarray] | None = None,
             executor: Any | None = None) -> EvaluationSummary:
    """Evaluate every prediction in ``pred_dir`` against the same-named reference in ``ref_dir``.

    Args:
        pred_dir: folder of predicted segmentations.
        ref_dir: folder of reference segmentations.
        labels: a ``LabelSpec`` or a list of labels (``1``) and regions (``(1, 2)``) to evaluate.
        file_ending: segmentation file ending; inferred from ``pred_dir`` when ``None``.
        nsd_tolerance_mm: NSD tolerance in mm; ``None`` skips the surface metrics (NSD, HD95).
        ignore_label: reference label excluded from all counts (default: the ``LabelSpec``'s).
        workers: worker processes (``<= 1``: this process).
        progress: show a progress bar.
        output: if given, write the summary there (``summary.json``) and the per-case CSV beside it
            (``<stem>_per_case.csv``).
        strict: also require a prediction for every reference.
        transform: optional picklable function applied to every predicted label map before scoring (used by
            post-processing to score candidate steps without writing files).
        executor: where the cases run (e.g. a ``dask.distributed.Client``); default: the one installed with
            :func:`autounet._parallel.using`, else ``workers`` local processes.

    Returns:
        The :class:`EvaluationSummary`.
    """
    pred_dir, ref_dir = Path(pred_dir), Path(ref_dir)
    items, ignore = resolve_labels(labels, ignore_label)
    if nsd_tolerance_mm is not None and nsd_tolerance_mm < 0:
        msg = f"The NSD tolerance must be >= 0 mm, got {nsd_tolerance_mm}."
        raise UsageError(msg)
    ending = file_ending or infer_file_ending(pred_dir)
    pairs = pair_cases(pred_dir, ref_dir, ending, strict=strict)
    tasks = [_Task(p, items, ignore, nsd_tolerance_mm, transform) for p in pairs]
    cases = map_cases(_run_task, tasks, workers=workers, progress=progress, desc="evaluate", executor=executor)
    summary = summarize(cases, keys_of(items), nsd_tolerance_mm=nsd_tolerance_mm, ignore_label=ignore)
    if output is not None:
        write_summary(output, summary)
    return summary


def per_case_csv_path(summary_path: str | os.PathLike[str]) -> Path:
    """``summary.json`` -> ``summary_per_case.csv`` (same folder)."""
    path = Path(summary_path)
    return path.with_name(f"{path.stem}_per_case.csv")


def write_summary(path: str | os.PathLike[str], summary: EvaluationSummary) -> None:
    """Write ``summary.json`` and its per-case CSV atomically."""
    path = Path(path)
    if path.suffix != ".json":
        msg = f"The summary file must end with .json, got {path}."
        raise UsageError(msg)
    save_summary(path, summary, provenance=make_provenance("autounet.evaluation"))
    write_per_case_csv(per_case_csv_path(path), summary)
