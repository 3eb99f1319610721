"""Decide on cross-validation predictions which connected-component steps help, and apply the decision.

The decision rule is the reference's (§9.1), greedy and cumulative:

1. Step A, "keep the largest foreground component": merge all foreground labels (also for region datasets),
   keep the largest component. Accepted iff the mean foreground Dice strictly improves **and** no label's/region's
   mean Dice decreases. NaN comparisons are false: a NaN baseline never accepts, a NaN class never vetoes.
2. Step B (only with more than one label/region), for each label (ascending) or region (dataset order) on top
   of what was accepted so far: keep the largest component of that label/region; accepted iff that key's mean
   Dice strictly improves.

Candidates are scored in memory (each case is read, the steps applied, Dice counted); nothing is written until
the decision is made. Unlike the reference, the foreground mean ignores classes whose mean is NaN (§12.13).
"""

from __future__ import annotations

import functools
import os
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autounet._log import get_logger
from autounet._parallel import map_cases
from autounet.errors import DatasetError
from autounet.evaluation.folder import (
    DEFAULT_NSD_TOLERANCE_MM,
    evaluate,
    infer_file_ending,
    read_label_map,
    resolve_labels,
    write_label_map,
)
from autounet.evaluation.metrics import label_classes
from autounet.postprocessing.connected_components import apply_steps
from autounet.schemas._base import make_provenance
from autounet.schemas.results import (
    EvaluationSummary,
    LabelOrRegion,
    PostprocessingDecision,
    PostprocessingStep,
    PostprocessingTrial,
    ScoreSnapshot,
    label_key,
    load_postprocessing,
    save_postprocessing,
)
from autounet.workspace import DATASET_JSON, PLANS_JSON, POSTPROCESSED_DIR, POSTPROCESSING_JSON, SUMMARY_JSON

log = get_logger(__name__)

CRITERION_ALL = "foreground mean Dice improves and no class gets worse"
CRITERION_ONE = "this key's mean Dice improves"
#: Files copied from an input folder so that post-processed outputs stay self-describing.
_COPIED = (PLANS_JSON, DATASET_JSON)


def foreground_labels_of(labels: Any, items: Sequence[LabelOrRegion]) -> tuple[int, ...]:
    """The labels merged by step A: a ``LabelSpec``'s foreground labels, else every label in ``items``."""
    fg = getattr(labels, "foreground_labels", None)
    return tuple(int(v) for v in fg) if fg is not None else label_classes(items)


def _accept_all(before: ScoreSnapshot, after: ScoreSnapshot) -> bool:
    if not after.foreground_dice > before.foreground_dice:
        return False
    return not any(after.dice[k] < before.dice[k] for k in after.dice)


def determine(pred_dir: str | os.PathLike[str], ref_dir: str | os.PathLike[str], *, labels: Any,
              file_ending: str | None = None, ignore_label: int | None = None, workers: int = 1,
              progress: bool = False, write_postprocessed: bool = True,
              nsd_tolerance_mm: float | None = DEFAULT_NSD_TOLERANCE_MM,
              decision_file: str | os.PathLike[str] | None = None) -> PostprocessingDecision:
    """Determine the post-processing of the predictions in ``pred_dir`` against the references in ``ref_dir``.

    Args:
        pred_dir: cross-validation predictions (every case of the dataset, as the reference advises).
        ref_dir: reference segmentations.
        labels: a ``LabelSpec`` or a list of labels/regions.
        file_ending: segmentation file ending (inferred when ``None``).
        ignore_label: reference label excluded from the counts (default: the ``LabelSpec``'s).
        workers: worker processes.
        progress: show progress bars.
        write_postprocessed: write the post-processed predictions and their ``summary.json`` (with NSD/HD95 at
            ``nsd_tolerance_mm``) to ``<pred_dir>/postprocessed/``.
        nsd_tolerance_mm: NSD tolerance of the post-processed summary.
        decision_file: where to save the decision (default ``<pred_dir>/postprocessing.json``).

    Returns:
        The :class:`PostprocessingDecision` (also saved).
    """
    pred_dir, ref_dir = Path(pred_dir), Path(ref_dir)
    items, ignore = resolve_labels(labels, ignore_label)
    ending = file_ending or infer_file_ending(pred_dir)
    scorer = _Scorer(pred_dir, ref_dir, items, ignore, ending, workers, progress)
    baseline = scorer.score(())
    steps: list[PostprocessingStep] = []
    trials: list[PostprocessingTrial] = []
    current = baseline

    candidate = PostprocessingStep(labels_or_regions=foreground_labels_of(labels, items))
    after = scorer.score((candidate,))
    accepted = _accept_all(current, after)
    trials.append(PostprocessingTrial(candidate, current, after, accepted, CRITERION_ALL))
    log.info("Keep largest foreground component: Dice %.5f -> %.5f (%s)", current.foreground_dice,
             after.foreground_dice, "accepted" if accepted else "rejected")
    if accepted:
        steps.append(candidate)
        current = after

    if len(items) > 1:
        for item in items:
            candidate = PostprocessingStep(labels_or_regions=(item,))
            after = scorer.score((*steps, candidate))
            key = label_key(item)
            accepted = after.dice[key] > current.dice[key]
            trials.append(PostprocessingTrial(candidate, current, after, accepted, CRITERION_ONE))
            log.info("Keep largest component of %s: Dice %.5f -> %.5f (%s)", key, current.dice[key],
                     after.dice[key], "accepted" if accepted else "rejected")
            if accepted:
                steps.append(candidate)
                current = after

    decision = PostprocessingDecision(steps=tuple(steps), trials=tuple(trials), baseline=baseline,
                                      postprocessed=current, file_ending=ending)
    save_postprocessing(decision_file or pred_dir / POSTPROCESSING_JSON, decision,
                        provenance=make_provenance("autounet.postprocessing.determine"))
    if write_postprocessed:
        out = pred_dir / POSTPROCESSED_DIR
        apply(pred_dir, out, decision, file_ending=ending, workers=workers, progress=progress)
        evaluate(out, ref_dir, labels=items, ignore_label=ignore, file_ending=ending,
                 nsd_tolerance_mm=nsd_tolerance_mm, workers=workers, progress=progress, output=out / SUMMARY_JSON)
    return decision


@dataclass(frozen=True)
class _Scorer:
    """Scores a sequence of steps on every case (Dice only, in memory)."""

    pred_dir: Path
    ref_dir: Path
    items: tuple[LabelOrRegion, ...]
    ignore: int | None
    ending: str
    workers: int
    progress: bool

    def summary(self, steps: tuple[PostprocessingStep, ...]) -> EvaluationSummary:
        transform = functools.partial(apply_steps, steps=steps) if steps else None
        return evaluate(self.pred_dir, self.ref_dir, labels=self.items, ignore_label=self.ignore,
                        file_ending=self.ending, nsd_tolerance_mm=None, workers=self.workers,
                        progress=self.progress, transform=transform)

    def score(self, steps: tuple[PostprocessingStep, ...]) -> ScoreSnapshot:
        return ScoreSnapshot.of(self.summary(steps))


@dataclass(frozen=True)
class _ApplyTask:
    source: Path
    target: Path
    steps: tuple[PostprocessingStep, ...]


def _apply_one(task: _ApplyTask) -> Path:
    seg, geometry = read_label_map(task.source)
    write_label_map(apply_steps(seg, task.steps), task.target, geometry)
    return task.target


def apply(input_dir: str | os.PathLike[str], output_dir: str | os.PathLike[str],
          decision: PostprocessingDecision | str | os.PathLike[str], *, file_ending: str | None = None,
          workers: int = 1, progress: bool = False) -> list[Path]:
    """Apply a post-processing decision (or a ``postprocessing.json``) to every segmentation in ``input_dir``.

    Writes the results under the same names to ``output_dir`` (which may equal ``input_dir``) and copies
    ``plans.json``/``dataset.json`` when present. Returns the written files.
    """
    input_dir, output_dir = Path(input_dir), Path(output_dir)
    if not isinstance(decision, PostprocessingDecision):
        decision = load_postprocessing(decision)
    if not input_dir.is_dir():
        msg = f"Input folder not found: {input_dir}"
        raise DatasetError(msg)
    ending = file_ending or decision.file_ending or infer_file_ending(input_dir)
    sources = sorted(f for f in input_dir.iterdir() if f.is_file() and f.name.endswith(ending)
                     and not f.name.startswith("."))
    if not sources:
        msg = f"No segmentations ending with {ending!r} in {input_dir}."
        raise DatasetError(msg)
    output_dir.mkdir(parents=True, exist_ok=True)
    tasks = [_ApplyTask(s, output_dir / s.name, decision.steps) for s in sources]
    written = map_cases(_apply_one, tasks, workers=workers, progress=progress, desc="postprocess")
    if output_dir.resolve() != input_dir.resolve():
        for name in _COPIED:
            if (input_dir / name).is_file():
                shutil.copyfile(input_dir / name, output_dir / name)
    return written
