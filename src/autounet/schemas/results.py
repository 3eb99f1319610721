"""Typed records of the validation stages: evaluation summaries, post-processing decisions, ensembles, selection.

On disk every record carries ``schema``/``schema_version`` (and a ``provenance`` block). The evaluation summary
keeps the reference's keys (``metric_per_case``, ``mean``, ``foreground_mean``; labels as ``"1"``, regions as
``"(1, 2)"``; metric names ``Dice IoU TP FP FN TN n_pred n_ref``) so that tools written for the reference's
``summary.json`` read ours; it adds ``NSD`` and ``HD95`` per label and the number of cases where a metric is NaN.
One module reads and writes these files: this one.
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Union  # noqa: UP035 - Union keeps the alias valid on Python 3.10 at runtime

from autounet.errors import SchemaError
from autounet.schemas._base import check_keys, read_json, save_record, unwrap, wrap

LabelOrRegion = Union[int, tuple[int, ...]]

SUMMARY_SCHEMA = "autounet/evaluation_summary"
POSTPROCESSING_SCHEMA = "autounet/postprocessing"
ENSEMBLE_SCHEMA = "autounet/ensemble"
INFERENCE_INFO_SCHEMA = "autounet/inference_information"
PROBABILITIES_SCHEMA = "autounet/probabilities"
SCHEMA_VERSION = 1

#: Metric names in the order they are written (the reference's eight, then the surface metrics).
COUNT_METRICS = ("TP", "FP", "FN", "TN", "n_pred", "n_ref")
OVERLAP_METRICS = ("Dice", "IoU")
SURFACE_METRICS = ("NSD", "HD95")
ALL_METRICS = (*OVERLAP_METRICS, *COUNT_METRICS, *SURFACE_METRICS)


# ---- label keys ------------------------------------------------------------------------------------------------
def label_key(label_or_region: LabelOrRegion) -> str:
    """The reference's JSON key: ``"1"`` for a label, ``"(1, 2)"`` for a region (``"(3,)"`` for a 1-label region)."""
    if isinstance(label_or_region, (tuple, list)):
        return str(tuple(int(v) for v in label_or_region))
    return str(int(label_or_region))


def parse_label_key(key: str) -> LabelOrRegion:
    """Inverse of :func:`label_key`; raises ``SchemaError`` for text that is neither form."""
    text = key.strip()
    try:
        if text.startswith("(") and text.endswith(")"):
            return tuple(int(v) for v in text[1:-1].split(",") if v.strip())
        return int(text)
    except ValueError as exc:
        msg = f"Invalid label key {key!r}: expected an integer like '1' or a region like '(1, 2)'."
        raise SchemaError(msg) from exc


def _num(value: Any) -> float:
    """A JSON number (or None, meaning NaN) as float."""
    return float("nan") if value is None else float(value)


def _json_float(value: float) -> float:
    """Floats are written as-is; the JSON writer emits ``NaN`` like the reference."""
    return float(value)


# ---- evaluation ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class LabelMetrics:
    """Metrics of one label or region in one case.

    Attributes:
        dice: ``2TP / (2TP + FP + FN)``; NaN when reference and prediction are both empty.
        iou: ``TP / (TP + FP + FN)``; NaN when both are empty.
        tp, fp, fn, tn: voxel counts over the valid (non-ignored) voxels.
        n_pred, n_ref: ``TP + FP`` and ``TP + FN``.
        nsd: normalized surface Dice at the summary's tolerance; NaN when both are empty, 0 when exactly one
            is empty; ``None`` when surface metrics were not computed.
        hd95: 95th-percentile Hausdorff distance in mm (the larger of the two directed 95th percentiles); NaN
            when either mask is empty; ``None`` when surface metrics were not computed.
    """

    dice: float
    iou: float
    tp: int
    fp: int
    fn: int
    tn: int
    n_pred: int
    n_ref: int
    nsd: float | None = None
    hd95: float | None = None

    def to_dict(self) -> dict[str, float | int]:
        """Reference metric names; the surface metrics only when computed."""
        out: dict[str, float | int] = {"Dice": self.dice, "IoU": self.iou, "TP": self.tp, "FP": self.fp,
                                       "FN": self.fn, "TN": self.tn, "n_pred": self.n_pred, "n_ref": self.n_ref}
        if self.nsd is not None:
            out["NSD"] = self.nsd
        if self.hd95 is not None:
            out["HD95"] = self.hd95
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str) -> LabelMetrics:
        """Validate one ``{"Dice": ..., ...}`` mapping."""
        check_keys(data, required=(*OVERLAP_METRICS, *COUNT_METRICS), allowed=SURFACE_METRICS, where=where)
        try:
            return cls(dice=_num(data["Dice"]), iou=_num(data["IoU"]), tp=int(data["TP"]), fp=int(data["FP"]),
                       fn=int(data["FN"]), tn=int(data["TN"]), n_pred=int(data["n_pred"]),
                       n_ref=int(data["n_ref"]),
                       nsd=_num(data["NSD"]) if "NSD" in data else None,
                       hd95=_num(data["HD95"]) if "HD95" in data else None)
        except (TypeError, ValueError) as exc:
            msg = f"{where}: non-numeric metric value ({exc})."
            raise SchemaError(msg) from exc


@dataclass(frozen=True)
class CaseResult:
    """All metrics of one case, keyed by :func:`label_key`."""

    case: str
    prediction_file: str
    reference_file: str
    metrics: dict[str, LabelMetrics]

    def to_dict(self) -> dict[str, Any]:
        """The reference's per-case entry plus the case id."""
        return {"case": self.case, "metrics": {k: m.to_dict() for k, m in self.metrics.items()},
                "prediction_file": self.prediction_file, "reference_file": self.reference_file}

    @classmethod
    def from_dict(cls, data: Any, *, where: str) -> CaseResult:
        """Validate one ``metric_per_case`` entry."""
        if not isinstance(data, dict):
            msg = f"{where}: expected an object, got {type(data).__name__}."
            raise SchemaError(msg)
        check_keys(data, required=("metrics", "prediction_file", "reference_file"), allowed=("case",), where=where)
        metrics = {str(k): LabelMetrics.from_dict(v, where=f"{where} label {k}") for k, v in data["metrics"].items()}
        pred = str(data["prediction_file"])
        return cls(case=str(data.get("case") or os.path.basename(pred)), prediction_file=pred,
                   reference_file=str(data["reference_file"]), metrics=metrics)


@dataclass(frozen=True)
class EvaluationSummary:
    """The result of evaluating a folder of predictions against references.

    Attributes:
        labels: evaluated label/region keys, in order (``"1"``, ``"(1, 2)"``).
        metric_per_case: one entry per predicted case, in sorted file order.
        mean: per key and metric, the mean over cases ignoring NaN (the reference's ``nanmean``).
        foreground_mean: per metric, the mean over the keys' means ignoring NaN keys (the reference uses a plain
            mean, which turns the whole score NaN when one class is empty everywhere; see ``nan_cases``).
        nan_cases: per key, how many cases had a NaN ``Dice``, ``IoU``, ``NSD`` or ``HD95``.
        nsd_tolerance_mm: tolerance used for NSD; ``None`` when surface metrics were not computed.
        ignore_label: reference label excluded from all counts, or ``None``.
    """

    labels: tuple[str, ...]
    metric_per_case: tuple[CaseResult, ...]
    mean: dict[str, dict[str, float]]
    foreground_mean: dict[str, float]
    nan_cases: dict[str, dict[str, int]]
    nsd_tolerance_mm: float | None = None
    ignore_label: int | None = None

    @property
    def score(self) -> float:
        """The selection score: ``foreground_mean["Dice"]``."""
        return float(self.foreground_mean.get("Dice", math.nan))

    @property
    def dice_per_label(self) -> dict[str, float]:
        """Mean Dice per key."""
        return {k: float(v.get("Dice", math.nan)) for k, v in self.mean.items()}

    def case(self, case_id: str) -> CaseResult:
        """The entry of one case (``KeyError`` if absent)."""
        for entry in self.metric_per_case:
            if entry.case == case_id:
                return entry
        raise KeyError(case_id)

    def to_dict(self, *, provenance: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The on-disk record (``foreground_mean`` first, as in the reference's sorted file)."""
        body = {
            "foreground_mean": {k: _json_float(v) for k, v in self.foreground_mean.items()},
            "mean": {k: {m: _json_float(x) for m, x in v.items()} for k, v in self.mean.items()},
            "nan_cases": {k: dict(v) for k, v in self.nan_cases.items()},
            "labels": list(self.labels),
            "nsd_tolerance_mm": self.nsd_tolerance_mm,
            "ignore_label": self.ignore_label,
            "metric_per_case": [c.to_dict() for c in self.metric_per_case],
        }
        return wrap(SUMMARY_SCHEMA, SCHEMA_VERSION, body, provenance=provenance)

    @classmethod
    def from_dict(cls, data: Any, *, where: str = "evaluation summary") -> EvaluationSummary:
        """Validate a record written by :meth:`to_dict`."""
        data = unwrap(data, schema=SUMMARY_SCHEMA, version=SCHEMA_VERSION, where=where)
        check_keys(data, required=("schema", "schema_version", "foreground_mean", "mean", "metric_per_case",
                                   "labels", "nan_cases"),
                   allowed=("provenance", "nsd_tolerance_mm", "ignore_label"), where=where)
        cases = tuple(CaseResult.from_dict(c, where=f"{where} metric_per_case[{i}]")
                      for i, c in enumerate(data["metric_per_case"]))
        tol = data.get("nsd_tolerance_mm")
        ignore = data.get("ignore_label")
        return cls(labels=tuple(str(k) for k in data["labels"]), metric_per_case=cases,
                   mean={str(k): {m: _num(x) for m, x in v.items()} for k, v in data["mean"].items()},
                   foreground_mean={m: _num(x) for m, x in data["foreground_mean"].items()},
                   nan_cases={str(k): {m: int(n) for m, n in v.items()} for k, v in data["nan_cases"].items()},
                   nsd_tolerance_mm=None if tol is None else float(tol),
                   ignore_label=None if ignore is None else int(ignore))


def load_summary(path: str | os.PathLike[str]) -> EvaluationSummary:
    """Read a ``summary.json`` written by autounet."""
    return EvaluationSummary.from_dict(read_json(path, what="Evaluation summary"),
                                       where=f"evaluation summary {os.fspath(path)}")


def save_summary(path: str | os.PathLike[str], summary: EvaluationSummary, *,
                 provenance: Mapping[str, Any] | None = None) -> None:
    """Write a ``summary.json`` atomically."""
    save_record(path, summary.to_dict(provenance=provenance))


# ---- post-processing -------------------------------------------------------------------------------------------
KEEP_LARGEST = "keep_largest_component"


@dataclass(frozen=True)
class PostprocessingStep:
    """One operation: keep only the largest connected component of the union of ``labels_or_regions``.

    Voxels of that union outside the kept component(s) are set to background (0). Components tied for the
    largest size are all kept (as the reference does).
    """

    labels_or_regions: tuple[LabelOrRegion, ...]
    operation: str = KEEP_LARGEST

    def __post_init__(self) -> None:
        if self.operation != KEEP_LARGEST:
            msg = f"Unknown post-processing operation {self.operation!r}; the only one is {KEEP_LARGEST!r}."
            raise SchemaError(msg)
        if not self.labels_or_regions:
            msg = "A post-processing step needs at least one label or region."
            raise SchemaError(msg)

    def to_dict(self) -> dict[str, Any]:
        """``{"operation": ..., "labels_or_regions": [1, [2, 3]]}``."""
        return {"operation": self.operation,
                "labels_or_regions": [list(v) if isinstance(v, tuple) else v for v in self.labels_or_regions]}

    @classmethod
    def from_dict(cls, data: Any, *, where: str) -> PostprocessingStep:
        """Validate a step."""
        if not isinstance(data, dict):
            msg = f"{where}: expected an object, got {type(data).__name__}."
            raise SchemaError(msg)
        check_keys(data, required=("labels_or_regions",), allowed=("operation",), where=where)
        items = data["labels_or_regions"]
        if not isinstance(items, list):
            msg = f"{where}: labels_or_regions must be a list, got {items!r}."
            raise SchemaError(msg)
        try:
            parsed = tuple(tuple(int(x) for x in v) if isinstance(v, list) else int(v) for v in items)
        except (TypeError, ValueError) as exc:
            msg = f"{where}: labels_or_regions must hold integers or lists of integers, got {items!r}."
            raise SchemaError(msg) from exc
        return cls(labels_or_regions=parsed, operation=str(data.get("operation", KEEP_LARGEST)))


@dataclass(frozen=True)
class ScoreSnapshot:
    """Mean Dice per key and the foreground mean, before or after a candidate step."""

    foreground_dice: float
    dice: dict[str, float]

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"foreground_dice": self.foreground_dice, "dice": dict(self.dice)}

    @classmethod
    def from_dict(cls, data: Any, *, where: str) -> ScoreSnapshot:
        """Validate a snapshot."""
        if not isinstance(data, dict):
            msg = f"{where}: expected an object."
            raise SchemaError(msg)
        check_keys(data, required=("foreground_dice", "dice"), allowed=(), where=where)
        return cls(foreground_dice=_num(data["foreground_dice"]),
                   dice={str(k): _num(v) for k, v in data["dice"].items()})

    @classmethod
    def of(cls, summary: EvaluationSummary) -> ScoreSnapshot:
        """The Dice part of an evaluation summary."""
        return cls(foreground_dice=summary.score, dice=summary.dice_per_label)


@dataclass(frozen=True)
class PostprocessingTrial:
    """One candidate step as tried by ``determine``: the scores before and after, and the verdict."""

    step: PostprocessingStep
    before: ScoreSnapshot
    after: ScoreSnapshot
    accepted: bool
    criterion: str

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"step": self.step.to_dict(), "criterion": self.criterion, "accepted": self.accepted,
                "before": self.before.to_dict(), "after": self.after.to_dict()}

    @classmethod
    def from_dict(cls, data: Any, *, where: str) -> PostprocessingTrial:
        """Validate a trial."""
        if not isinstance(data, dict):
            msg = f"{where}: expected an object."
            raise SchemaError(msg)
        check_keys(data, required=("step", "accepted", "before", "after", "criterion"), allowed=(), where=where)
        return cls(step=PostprocessingStep.from_dict(data["step"], where=f"{where} step"),
                   before=ScoreSnapshot.from_dict(data["before"], where=f"{where} before"),
                   after=ScoreSnapshot.from_dict(data["after"], where=f"{where} after"),
                   accepted=bool(data["accepted"]), criterion=str(data["criterion"]))


@dataclass(frozen=True)
class PostprocessingDecision:
    """Which connected-component steps to apply, in order, and the evidence for each choice.

    Attributes:
        steps: the accepted steps, applied in this order by ``postprocessing.apply``.
        trials: every candidate tried, accepted or not, in the order tried.
        baseline: scores of the input predictions.
        postprocessed: scores after applying ``steps``.
        file_ending: segmentation file ending of the folder it was determined on.
    """

    steps: tuple[PostprocessingStep, ...]
    trials: tuple[PostprocessingTrial, ...] = ()
    baseline: ScoreSnapshot | None = None
    postprocessed: ScoreSnapshot | None = None
    file_ending: str | None = None

    def to_dict(self, *, provenance: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The on-disk record."""
        body = {"steps": [s.to_dict() for s in self.steps], "file_ending": self.file_ending,
                "baseline": None if self.baseline is None else self.baseline.to_dict(),
                "postprocessed": None if self.postprocessed is None else self.postprocessed.to_dict(),
                "trials": [t.to_dict() for t in self.trials]}
        return wrap(POSTPROCESSING_SCHEMA, SCHEMA_VERSION, body, provenance=provenance)

    @classmethod
    def from_dict(cls, data: Any, *, where: str = "post-processing decision") -> PostprocessingDecision:
        """Validate a record written by :meth:`to_dict`."""
        data = unwrap(data, schema=POSTPROCESSING_SCHEMA, version=SCHEMA_VERSION, where=where)
        check_keys(data, required=("schema", "schema_version", "steps"),
                   allowed=("provenance", "trials", "baseline", "postprocessed", "file_ending"), where=where)
        steps = tuple(PostprocessingStep.from_dict(s, where=f"{where} steps[{i}]") for i, s in enumerate(data["steps"]))
        trials = tuple(PostprocessingTrial.from_dict(t, where=f"{where} trials[{i}]")
                       for i, t in enumerate(data.get("trials") or []))
        base, post = data.get("baseline"), data.get("postprocessed")
        return cls(steps=steps, trials=trials,
                   baseline=None if base is None else ScoreSnapshot.from_dict(base, where=f"{where} baseline"),
                   postprocessed=(None if post is None
                                  else ScoreSnapshot.from_dict(post, where=f"{where} postprocessed")),
                   file_ending=data.get("file_ending"))


def load_postprocessing(path: str | os.PathLike[str]) -> PostprocessingDecision:
    """Read a ``postprocessing.json``."""
    return PostprocessingDecision.from_dict(read_json(path, what="Post-processing decision"),
                                            where=f"post-processing decision {os.fspath(path)}")


def save_postprocessing(path: str | os.PathLike[str], decision: PostprocessingDecision, *,
                        provenance: Mapping[str, Any] | None = None) -> None:
    """Write a ``postprocessing.json`` atomically."""
    save_record(path, decision.to_dict(provenance=provenance))


# ---- saved probabilities ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ProbabilityRecord:
    """Metadata written beside a case's saved probabilities (``<case>.meta.json`` next to ``<case>.npz``).

    Attributes:
        case: case id.
        shape: shape of the stored array ``(K, a0, a1, a2)`` (original image geometry, channel first).
        geometry: the ``ImageGeometry.to_dict()`` of the source image (to write segmentations in place).
        labels: ``LabelSpec.to_dict()`` (label mapping and ``regions_class_order``): channel ``i`` is label ``i``
            in label mode (softmax), region ``i`` in region mode (sigmoid).
        file_ending: segmentation file ending of the predictions beside it.
    """

    case: str
    shape: tuple[int, ...]
    geometry: dict[str, Any]
    labels: dict[str, Any]
    file_ending: str

    def to_dict(self, *, provenance: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The on-disk record."""
        body = {"case": self.case, "shape": list(self.shape), "file_ending": self.file_ending,
                "geometry": dict(self.geometry), "labels": dict(self.labels)}
        return wrap(PROBABILITIES_SCHEMA, SCHEMA_VERSION, body, provenance=provenance)

    @classmethod
    def from_dict(cls, data: Any, *, where: str = "probabilities record") -> ProbabilityRecord:
        """Validate a record written by :meth:`to_dict`."""
        data = unwrap(data, schema=PROBABILITIES_SCHEMA, version=SCHEMA_VERSION, where=where)
        check_keys(data, required=("schema", "schema_version", "case", "shape", "geometry", "labels", "file_ending"),
                   allowed=("provenance",), where=where)
        if not isinstance(data["geometry"], dict) or not isinstance(data["labels"], dict):
            msg = f"{where}: geometry and labels must be objects."
            raise SchemaError(msg)
        return cls(case=str(data["case"]), shape=tuple(int(v) for v in data["shape"]),
                   geometry=dict(data["geometry"]), labels=dict(data["labels"]),
                   file_ending=str(data["file_ending"]))


# ---- ensembles and model selection -----------------------------------------------------------------------------
@dataclass(frozen=True)
class EnsembleSpec:
    """What an ensemble output folder was made from (``ensemble.json`` beside its segmentations).

    Attributes:
        members: the input folders (or trained-model identifiers) whose probabilities were averaged.
        cases: the case ids written.
        file_ending: segmentation file ending of the outputs.
        folds: for cross-validation ensembles, the folds merged; ``None`` for plain folder ensembles.
        probabilities_saved: whether averaged probabilities were written beside the segmentations.
    """

    members: tuple[str, ...]
    cases: tuple[str, ...]
    file_ending: str
    folds: tuple[int, ...] | None = None
    probabilities_saved: bool = False

    def to_dict(self, *, provenance: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The on-disk record."""
        body = {"members": list(self.members), "folds": None if self.folds is None else list(self.folds),
                "file_ending": self.file_ending, "probabilities_saved": self.probabilities_saved,
                "cases": list(self.cases)}
        return wrap(ENSEMBLE_SCHEMA, SCHEMA_VERSION, body, provenance=provenance)

    @classmethod
    def from_dict(cls, data: Any, *, where: str = "ensemble record") -> EnsembleSpec:
        """Validate a record written by :meth:`to_dict`."""
        data = unwrap(data, schema=ENSEMBLE_SCHEMA, version=SCHEMA_VERSION, where=where)
        check_keys(data, required=("schema", "schema_version", "members", "cases", "file_ending"),
                   allowed=("provenance", "folds", "probabilities_saved"), where=where)
        folds = data.get("folds")
        return cls(members=tuple(map(str, data["members"])), cases=tuple(map(str, data["cases"])),
                   file_ending=str(data["file_ending"]), folds=None if folds is None else tuple(map(int, folds)),
                   probabilities_saved=bool(data.get("probabilities_saved", False)))


def load_ensemble_spec(path: str | os.PathLike[str]) -> EnsembleSpec:
    """Read an ``ensemble.json``."""
    return EnsembleSpec.from_dict(read_json(path, what="Ensemble record"), where=f"ensemble record {os.fspath(path)}")


def save_ensemble_spec(path: str | os.PathLike[str], spec: EnsembleSpec, *,
                       provenance: Mapping[str, Any] | None = None) -> None:
    """Write an ``ensemble.json`` atomically."""
    save_record(path, spec.to_dict(provenance=provenance))


@dataclass(frozen=True)
class TrainedModel:
    """One trained configuration: ``<trainer>__<plans>__<configuration>``."""

    trainer: str
    plans: str
    configuration: str

    @property
    def identifier(self) -> str:
        """The model folder name."""
        return f"{self.trainer}__{self.plans}__{self.configuration}"

    def to_dict(self) -> dict[str, str]:
        """Reference keys (``plans_identifier`` as in ``selected_model_or_models``)."""
        return {"trainer": self.trainer, "plans_identifier": self.plans, "configuration": self.configuration}

    @classmethod
    def from_dict(cls, data: Any, *, where: str) -> TrainedModel:
        """Validate a model entry."""
        if not isinstance(data, dict):
            msg = f"{where}: expected an object."
            raise SchemaError(msg)
        check_keys(data, required=("trainer", "plans_identifier", "configuration"), allowed=(), where=where)
        return cls(trainer=str(data["trainer"]), plans=str(data["plans_identifier"]),
                   configuration=str(data["configuration"]))


@dataclass(frozen=True)
class InferenceInformation:
    """The outcome of ``find_best`` (``inference_information.json``).

    Attributes:
        dataset: dataset name.
        folds: folds whose validation predictions were merged.
        considered_models: the trained configurations compared.
        ensembling_allowed: whether pair ensembles were compared.
        all_results: score (mean foreground Dice) per model identifier or ensemble name, in evaluation order.
        best: the winning model identifier or ensemble name.
        selected_models: the model(s) to run at inference (two for an ensemble).
        result_on_crossval_pre_pp: the winner's score.
        result_on_crossval_post_pp: the winner's score after post-processing.
        postprocessing_file: the winner's ``postprocessing.json``.
        source_folder: the winner's merged cross-validation folder.
        nsd_tolerance_mm: NSD tolerance of the stored summaries.
    """

    dataset: str
    folds: tuple[int, ...]
    considered_models: tuple[TrainedModel, ...]
    ensembling_allowed: bool
    all_results: dict[str, float]
    best: str
    selected_models: tuple[TrainedModel, ...]
    result_on_crossval_pre_pp: float
    result_on_crossval_post_pp: float
    postprocessing_file: str
    source_folder: str
    nsd_tolerance_mm: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def is_ensemble(self) -> bool:
        """Whether an ensemble won."""
        return len(self.selected_models) > 1

    def to_dict(self, *, provenance: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The on-disk record (the reference's keys, plus ``best`` and the source folder)."""
        body = {
            "dataset_name_or_id": self.dataset, "folds": list(self.folds),
            "considered_models": [m.to_dict() for m in self.considered_models],
            "ensembling_allowed": self.ensembling_allowed, "all_results": dict(self.all_results),
            "best_model_or_ensemble": {
                "name": self.best,
                "result_on_crossval_pre_pp": self.result_on_crossval_pre_pp,
                "result_on_crossval_post_pp": self.result_on_crossval_post_pp,
                "postprocessing_file": self.postprocessing_file,
                "source_folder": self.source_folder,
                "selected_model_or_models": [m.to_dict() for m in self.selected_models],
            },
            "nsd_tolerance_mm": self.nsd_tolerance_mm,
            "extra": dict(self.extra),
        }
        return wrap(INFERENCE_INFO_SCHEMA, SCHEMA_VERSION, body, provenance=provenance)

    @classmethod
    def from_dict(cls, data: Any, *, where: str = "inference information") -> InferenceInformation:
        """Validate a record written by :meth:`to_dict`."""
        data = unwrap(data, schema=INFERENCE_INFO_SCHEMA, version=SCHEMA_VERSION, where=where)
        check_keys(data, required=("schema", "schema_version", "dataset_name_or_id", "folds", "considered_models",
                                   "ensembling_allowed", "all_results", "best_model_or_ensemble"),
                   allowed=("provenance", "nsd_tolerance_mm", "extra"), where=where)
        best = data["best_model_or_ensemble"]
        check_keys(best, required=("name", "result_on_crossval_pre_pp", "result_on_crossval_post_pp",
                                   "postprocessing_file", "source_folder", "selected_model_or_models"),
                   allowed=(), where=f"{where} best_model_or_ensemble")
        tol = data.get("nsd_tolerance_mm")
        return cls(
            dataset=str(data["dataset_name_or_id"]), folds=tuple(map(int, data["folds"])),
            considered_models=tuple(TrainedModel.from_dict(m, where=f"{where} considered_models")
                                    for m in data["considered_models"]),
            ensembling_allowed=bool(data["ensembling_allowed"]),
            all_results={str(k): _num(v) for k, v in data["all_results"].items()},
            best=str(best["name"]),
            selected_models=tuple(TrainedModel.from_dict(m, where=f"{where} selected_model_or_models")
                                  for m in best["selected_model_or_models"]),
            result_on_crossval_pre_pp=_num(best["result_on_crossval_pre_pp"]),
            result_on_crossval_post_pp=_num(best["result_on_crossval_post_pp"]),
            postprocessing_file=str(best["postprocessing_file"]), source_folder=str(best["source_folder"]),
            nsd_tolerance_mm=None if tol is None else float(tol), extra=dict(data.get("extra") or {}))


def load_inference_information(path: str | os.PathLike[str]) -> InferenceInformation:
    """Read an ``inference_information.json``."""
    return InferenceInformation.from_dict(read_json(path, what="Inference information"),
                                          where=f"inference information {os.fspath(path)}")


def save_inference_information(path: str | os.PathLike[str], info: InferenceInformation, *,
                               provenance: Mapping[str, Any] | None = None) -> None:
    """Write an ``inference_information.json`` atomically."""
    save_record(path, info.to_dict(provenance=provenance))


def keys_of(labels_or_regions: Sequence[LabelOrRegion]) -> tuple[str, ...]:
    """The JSON keys of a list of labels/regions, in order."""
    return tuple(label_key(v) for v in labels_or_regions)
