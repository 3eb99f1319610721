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
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, model_validator
from pydantic.dataclasses import dataclass

from autounet.errors import SchemaError
from autounet.schemas._base import (
    RECORD_CONFIG,
    dump,
    header_schema,
    json_schema,
    read_json,
    save_record,
    unwrap,
    validate,
    wrap,
)

LabelOrRegion = int | tuple[int, ...]

SUMMARY_SCHEMA = "autounet/evaluation_summary"
POSTPROCESSING_SCHEMA = "autounet/postprocessing"
ENSEMBLE_SCHEMA = "autounet/ensemble"
INFERENCE_INFO_SCHEMA = "autounet/inference_information"
PROBABILITIES_SCHEMA = "autounet/probabilities"
PREDICT_ARGS_SCHEMA = "autounet/predict_args"
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


#: A metric value: ``null`` (as some writers spell NaN) reads as NaN.
Num = Annotated[float, BeforeValidator(lambda v: math.nan if v is None else v)]


def _record(cls: Any, data: Any, *, schema: str, where: str) -> Any:
    """Check the header of an on-disk record, drop it and validate the body into ``cls``."""
    data = unwrap(data, schema=schema, version=SCHEMA_VERSION, where=where)
    del data["schema"], data["schema_version"]
    data.pop("provenance", None)
    return validate(cls, data, where=where)


# ---- evaluation ------------------------------------------------------------------------------------------------
@dataclass(frozen=True, config=RECORD_CONFIG)
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

    dice: Annotated[Num, Field(alias="Dice")]
    iou: Annotated[Num, Field(alias="IoU")]
    tp: Annotated[int, Field(alias="TP")]
    fp: Annotated[int, Field(alias="FP")]
    fn: Annotated[int, Field(alias="FN")]
    tn: Annotated[int, Field(alias="TN")]
    n_pred: int
    n_ref: int
    nsd: Annotated[Num | None, Field(alias="NSD")] = None
    hd95: Annotated[Num | None, Field(alias="HD95")] = None

    def to_dict(self) -> dict[str, float | int]:
        """Reference metric names; the surface metrics only when computed."""
        return dump(self, omit_empty=SURFACE_METRICS)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], *, where: str) -> LabelMetrics:
        """Validate one ``{"Dice": ..., ...}`` mapping."""
        return validate(cls, data, where=where)


@dataclass(frozen=True, config=RECORD_CONFIG)
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
        """Validate one ``metric_per_case`` entry (``case`` defaults to the prediction's file name)."""
        if isinstance(data, dict) and not data.get("case") and "prediction_file" in data:
            data = {**data, "case": os.path.basename(str(data["prediction_file"]))}
        return validate(cls, data, where=where)


@dataclass(frozen=True, config=RECORD_CONFIG)
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
    mean: dict[str, dict[str, Num]]
    foreground_mean: dict[str, Num]
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
        if isinstance(data, dict) and isinstance(data.get("metric_per_case"), list):
            data = {**data, "metric_per_case": [
                {**c, "case": c.get("case") or os.path.basename(str(c.get("prediction_file", "")))}
                if isinstance(c, dict) else c for c in data["metric_per_case"]]}
        return _record(cls, data, schema=SUMMARY_SCHEMA, where=where)  # type: ignore[no-any-return]


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


@dataclass(frozen=True, config=RECORD_CONFIG)
class PostprocessingStep:
    """One operation: keep only the largest connected component of the union of ``labels_or_regions``.

    Voxels of that union outside the kept component(s) are set to background (0). Components tied for the
    largest size are all kept (as the reference does).
    """

    labels_or_regions: tuple[int | tuple[int, ...], ...]
    operation: str = KEEP_LARGEST

    @model_validator(mode="after")
    def _known(self) -> PostprocessingStep:
        if self.operation != KEEP_LARGEST:
            msg = f"Unknown post-processing operation {self.operation!r}; the only one is {KEEP_LARGEST!r}"
            raise ValueError(msg)
        if not self.labels_or_regions:
            raise ValueError("A post-processing step needs at least one label or region")
        return self

    def to_dict(self) -> dict[str, Any]:
        """``{"operation": ..., "labels_or_regions": [1, [2, 3]]}``."""
        return {"operation": self.operation,
                "labels_or_regions": [list(v) if isinstance(v, tuple) else v for v in self.labels_or_regions]}

    @classmethod
    def from_dict(cls, data: Any, *, where: str) -> PostprocessingStep:
        """Validate a step."""
        return validate(cls, data, where=where)


@dataclass(frozen=True, config=RECORD_CONFIG)
class ScoreSnapshot:
    """Mean Dice per key and the foreground mean, before or after a candidate step."""

    foreground_dice: Num
    dice: dict[str, Num]

    def to_dict(self) -> dict[str, Any]:
        """JSON form."""
        return {"foreground_dice": self.foreground_dice, "dice": dict(self.dice)}

    @classmethod
    def from_dict(cls, data: Any, *, where: str) -> ScoreSnapshot:
        """Validate a snapshot."""
        return validate(cls, data, where=where)

    @classmethod
    def of(cls, summary: EvaluationSummary) -> ScoreSnapshot:
        """The Dice part of an evaluation summary."""
        return cls(foreground_dice=summary.score, dice=summary.dice_per_label)


@dataclass(frozen=True, config=RECORD_CONFIG)
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
        return validate(cls, data, where=where)


@dataclass(frozen=True, config=RECORD_CONFIG)
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
        if isinstance(data, dict) and data.get("trials") is None:
            data = {**data, "trials": []}
        return _record(cls, data, schema=POSTPROCESSING_SCHEMA, where=where)  # type: ignore[no-any-return]


def load_postprocessing(path: str | os.PathLike[str]) -> PostprocessingDecision:
    """Read a ``postprocessing.json``."""
    return PostprocessingDecision.from_dict(read_json(path, what="Post-processing decision"),
                                            where=f"post-processing decision {os.fspath(path)}")


def save_postprocessing(path: str | os.PathLike[str], decision: PostprocessingDecision, *,
                        provenance: Mapping[str, Any] | None = None) -> None:
    """Write a ``postprocessing.json`` atomically."""
    save_record(path, decision.to_dict(provenance=provenance))


# ---- saved probabilities ---------------------------------------------------------------------------------------
@dataclass(frozen=True, config=RECORD_CONFIG)
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
        return _record(cls, data, schema=PROBABILITIES_SCHEMA, where=where)  # type: ignore[no-any-return]


# ---- prediction runs ------------------------------------------------------------------------------------------
@dataclass(frozen=True, config=RECORD_CONFIG)
class PredictArgs:
    """What a prediction run was asked to do (``predict_args.json`` beside its outputs).

    Attributes:
        inputs: the input files or folders, as given.
        model: the model's identity (dataset, configuration, folds, checkpoint, ...).
        settings: the inference settings (tile step, mirroring, device, ...).
        save_probabilities: whether probabilities were written beside the segmentations.
    """

    inputs: tuple[str, ...]
    model: dict[str, Any]
    settings: dict[str, Any]
    save_probabilities: bool = False

    def to_dict(self, *, provenance: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The on-disk record."""
        return wrap(PREDICT_ARGS_SCHEMA, SCHEMA_VERSION, dump(self), provenance=provenance)

    @classmethod
    def from_dict(cls, data: Any, *, where: str = "prediction arguments") -> PredictArgs:
        """Validate a record written by :meth:`to_dict`."""
        return _record(cls, data, schema=PREDICT_ARGS_SCHEMA, where=where)  # type: ignore[no-any-return]


def load_predict_args(path: str | os.PathLike[str]) -> PredictArgs:
    """Read a ``predict_args.json``."""
    return PredictArgs.from_dict(read_json(path, what="Prediction arguments"),
                                 where=f"prediction arguments {os.fspath(path)}")


def save_predict_args(path: str | os.PathLike[str], args: PredictArgs, *,
                      provenance: Mapping[str, Any] | None = None) -> None:
    """Write a ``predict_args.json`` atomically."""
    save_record(path, args.to_dict(provenance=provenance))


# ---- ensembles and model selection -----------------------------------------------------------------------------
@dataclass(frozen=True, config=RECORD_CONFIG)
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
        return _record(cls, data, schema=ENSEMBLE_SCHEMA, where=where)  # type: ignore[no-any-return]


def load_ensemble_spec(path: str | os.PathLike[str]) -> EnsembleSpec:
    """Read an ``ensemble.json``."""
    return EnsembleSpec.from_dict(read_json(path, what="Ensemble record"), where=f"ensemble record {os.fspath(path)}")


def save_ensemble_spec(path: str | os.PathLike[str], spec: EnsembleSpec, *,
                       provenance: Mapping[str, Any] | None = None) -> None:
    """Write an ``ensemble.json`` atomically."""
    save_record(path, spec.to_dict(provenance=provenance))


@dataclass(frozen=True, config=RECORD_CONFIG)
class TrainedModel:
    """One trained configuration: ``<trainer>__<plans>__<configuration>``."""

    trainer: str
    plans: Annotated[str, Field(alias="plans_identifier")]
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
        return validate(cls, data, where=where)


@dataclass(frozen=True, config=RECORD_CONFIG)
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
    extra: dict[str, Any] = Field(default_factory=dict)

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
        disk: _InferenceInformationFile = _record(_InferenceInformationFile, data, schema=INFERENCE_INFO_SCHEMA,
                                                  where=where)
        best = disk.best_model_or_ensemble
        return cls(dataset=disk.dataset_name_or_id, folds=disk.folds, considered_models=disk.considered_models,
                   ensembling_allowed=disk.ensembling_allowed, all_results=disk.all_results, best=best.name,
                   selected_models=best.selected_model_or_models,
                   result_on_crossval_pre_pp=best.result_on_crossval_pre_pp,
                   result_on_crossval_post_pp=best.result_on_crossval_post_pp,
                   postprocessing_file=best.postprocessing_file, source_folder=best.source_folder,
                   nsd_tolerance_mm=disk.nsd_tolerance_mm, extra=disk.extra)


@dataclass(frozen=True, config=RECORD_CONFIG)
class _BestModelOrEnsemble:
    """``best_model_or_ensemble`` as written in ``inference_information.json``."""

    name: str
    result_on_crossval_pre_pp: Num
    result_on_crossval_post_pp: Num
    postprocessing_file: str
    source_folder: str
    selected_model_or_models: tuple[TrainedModel, ...]


@dataclass(frozen=True, config=RECORD_CONFIG)
class _InferenceInformationFile:
    """``inference_information.json`` as written (the reference's keys and nesting)."""

    dataset_name_or_id: str
    folds: tuple[int, ...]
    considered_models: tuple[TrainedModel, ...]
    ensembling_allowed: bool
    all_results: dict[str, Num]
    best_model_or_ensemble: _BestModelOrEnsemble
    nsd_tolerance_mm: float | None = None
    extra: dict[str, Any] = Field(default_factory=dict)


def load_inference_information(path: str | os.PathLike[str]) -> InferenceInformation:
    """Read an ``inference_information.json``."""
    return InferenceInformation.from_dict(read_json(path, what="Inference information"),
                                          where=f"inference information {os.fspath(path)}")


def save_inference_information(path: str | os.PathLike[str], info: InferenceInformation, *,
                               provenance: Mapping[str, Any] | None = None) -> None:
    """Write an ``inference_information.json`` atomically."""
    save_record(path, info.to_dict(provenance=provenance))


def results_json_schemas() -> dict[str, dict[str, Any]]:
    """JSON Schemas of the validation artefacts, by file kind."""
    kinds = {"evaluation_summary": (EvaluationSummary, SUMMARY_SCHEMA),
             "postprocessing": (PostprocessingDecision, POSTPROCESSING_SCHEMA),
             "ensemble": (EnsembleSpec, ENSEMBLE_SCHEMA),
             "inference_information": (_InferenceInformationFile, INFERENCE_INFO_SCHEMA),
             "probabilities": (ProbabilityRecord, PROBABILITIES_SCHEMA),
             "predict_args": (PredictArgs, PREDICT_ARGS_SCHEMA)}
    return {kind: header_schema(json_schema(cls), schema=schema, version=SCHEMA_VERSION)
            for kind, (cls, schema) in kinds.items()}


def keys_of(labels_or_regions: Sequence[LabelOrRegion]) -> tuple[str, ...]:
    """The JSON keys of a list of labels/regions, in order."""
    return tuple(label_key(v) for v in labels_or_regions)
