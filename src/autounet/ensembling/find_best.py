"""Model selection (§9.4): compare trained configurations and their pair ensembles by cross-validation.

1. Candidates are trainers × configurations × plans (in that nesting order). A configuration missing from the
   plans is skipped; a candidate that is in the plans but has no trained model folder is an error.
2. Each model's fold validations are merged into ``crossval_results_folds_<folds>`` and evaluated (score: mean
   foreground Dice, with NSD/HD95 recorded beside it).
3. Unless disabled, every unordered pair of models is ensembled from the saved validation probabilities into
   ``ensembles/ensemble___<A>___<B>___<folds>`` and evaluated.
4. The best score wins; ties go to the first evaluated (single models come before ensembles).
5. Post-processing is determined on the winner's folder; ``inference_information.json`` and
   ``inference_instructions.txt`` (exact ``autounet`` commands, including the low-resolution step that a cascade
   needs, which the reference omits) are written to the dataset's results folder.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import product
from pathlib import Path
from typing import Any

from autounet._atomic import write_bytes_atomic
from autounet._log import get_logger
from autounet.ensembling.crossval import accumulate_crossval
from autounet.ensembling.ensemble import ensemble_crossvalidation
from autounet.errors import DatasetError, PlansError, UsageError
from autounet.evaluation.folder import DEFAULT_NSD_TOLERANCE_MM, evaluate
from autounet.io import segmentation_ending
from autounet.labels import LabelSpec
from autounet.planning.store import read_plans_file
from autounet.postprocessing.decide import determine
from autounet.schemas._base import make_provenance
from autounet.schemas.dataset import load_dataset_spec
from autounet.schemas.results import (
    EvaluationSummary,
    InferenceInformation,
    TrainedModel,
    load_summary,
    save_inference_information,
)
from autounet.workspace import (
    DATASET_JSON,
    DEFAULT_PLANS_NAME,
    DEFAULT_TRAINER,
    ENSEMBLES_DIR,
    INFERENCE_INFORMATION_JSON,
    INFERENCE_INSTRUCTIONS_TXT,
    PLANS_JSON,
    POSTPROCESSED_DIR,
    POSTPROCESSING_JSON,
    SUMMARY_JSON,
    Workspace,
    ensemble_dir_name,
)

log = get_logger(__name__)

DEFAULT_CONFIGURATIONS = ("2d", "3d_fullres", "3d_lowres", "3d_cascade_fullres")


@dataclass(frozen=True)
class Candidate:
    """One evaluated model or ensemble."""

    name: str
    source: Path
    members: tuple[TrainedModel, ...]
    summary: EvaluationSummary

    @property
    def score(self) -> float:
        """Mean foreground Dice."""
        return self.summary.score


def available_models(workspace: Workspace, dataset: str, *, trainers: Sequence[str], configurations: Sequence[str],
                     plans: Sequence[str]) -> list[TrainedModel]:
    """Candidates in the reference's order; configurations absent from the plans are skipped (logged)."""
    out = []
    for trainer, configuration, plans_name in product(trainers, configurations, plans):
        plans_file = workspace.plans_file(dataset, plans_name)
        model = TrainedModel(trainer=trainer, plans=plans_name, configuration=configuration)
        model_dir = workspace.model_dir(dataset, configuration, plans_name=plans_name, trainer=trainer)
        names = _configuration_names(plans_file if plans_file.is_file() else model_dir / PLANS_JSON)
        if names is not None and configuration not in names:
            log.info("Configuration %s is not in plans %s; skipped.", configuration, plans_name)
            continue
        if not model_dir.is_dir():
            msg = (f"Trained model {model.identifier} not found (expected {model_dir}). Train all folds of it "
                   "(with validation probabilities for ensembling) or leave it out of -c/--configurations.")
            raise DatasetError(msg)
        out.append(model)
    if not out:
        msg = f"No trained configurations of {dataset} to compare (asked for {', '.join(configurations)})."
        raise DatasetError(msg)
    return out


def _configuration_names(plans_file: Path) -> list[str] | None:
    return read_plans_file(plans_file).configuration_names() if plans_file.is_file() else None


def previous_stage(model_dir: Path, configuration: str) -> str | None:
    """The configuration a cascade stage takes its input from (from the model's ``plans.json``), or ``None``."""
    plans_file = model_dir / PLANS_JSON
    if not plans_file.is_file():
        return None
    try:
        value = read_plans_file(plans_file).resolved_dict(configuration).get("previous_stage")
    except PlansError:
        return None
    return None if value is None else str(value)


def _best(candidates: Sequence[Candidate]) -> Candidate:
    finite = [c.score for c in candidates if not math.isnan(c.score)]
    if not finite:
        log.warning("Every candidate scored NaN; choosing the first, %s.", candidates[0].name)
        return candidates[0]
    top = max(finite)
    return next(c for c in candidates if c.score == top)


def find_best(workspace: Workspace, dataset: str, *, configurations: Sequence[str] = DEFAULT_CONFIGURATIONS,
              trainers: Sequence[str] = (DEFAULT_TRAINER,), plans: Sequence[str] = (DEFAULT_PLANS_NAME,),
              folds: Sequence[int] = (0, 1, 2, 3, 4), allow_ensembling: bool = True,
              nsd_tolerance_mm: float | None = DEFAULT_NSD_TOLERANCE_MM, workers: int = 1, progress: bool = False,
              workspace_flag: str | None = None) -> InferenceInformation:
    """Select the best configuration or pair ensemble of ``dataset`` and write the inference instructions.

    Args:
        workspace: the workspace (results and preprocessed roots).
        dataset: dataset name (``Dataset004_Hippocampus``).
        configurations, trainers, plans: the candidates (their Cartesian product).
        folds: folds whose validations are merged.
        allow_ensembling: also compare every pair ensemble.
        nsd_tolerance_mm: NSD tolerance of the stored summaries.
        workers: worker processes for evaluation, ensembling and post-processing.
        progress: show progress bars.
        workspace_flag: a ``--workspace`` value to put into the printed commands (when not the default).

    Returns:
        The :class:`InferenceInformation` (also saved as ``inference_information.json``).
    """
    folds = tuple(int(f) for f in folds)
    if not folds:
        msg = "find_best needs at least one fold."
        raise UsageError(msg)
    models = available_models(workspace, dataset, trainers=trainers, configurations=configurations, plans=plans)
    model_dirs = {m: workspace.model_dir(dataset, m.configuration, plans_name=m.plans, trainer=m.trainer)
                  for m in models}
    spec = load_dataset_spec(model_dirs[models[0]] / DATASET_JSON)
    labels = LabelSpec.from_dataset_spec(spec)
    ref_dir = workspace.gt_segmentations(dataset)
    ending = segmentation_ending(spec.file_ending)  # predictions of DICOM cases and their references: .nii.gz
    if not ref_dir.is_dir():
        msg = f"Reference segmentations not found: {ref_dir}. Preprocess the dataset first (it copies them there)."
        raise DatasetError(msg)
    common: dict[str, Any] = {"labels": labels, "nsd_tolerance_mm": nsd_tolerance_mm, "workers": workers,
                              "progress": progress}

    candidates: list[Candidate] = []
    for model in models:
        log.info("Merging and evaluating the cross-validation of %s", model.identifier)
        merged, summary = accumulate_crossval(model_dirs[model], ref_dir, file_ending=ending, folds=folds,
                                              **common)
        candidates.append(Candidate(model.identifier, merged, (model,), summary))
    if allow_ensembling:
        for i, a in enumerate(models):
            for b in models[i + 1:]:
                name = ensemble_dir_name(a.identifier, b.identifier, folds)
                out = workspace.results_dataset(dataset) / ENSEMBLES_DIR / name
                log.info("Ensembling %s and %s", a.identifier, b.identifier)
                ensemble_crossvalidation([model_dirs[a], model_dirs[b]], out, folds=folds, workers=workers,
                                         progress=progress)
                summary = evaluate(out, ref_dir, file_ending=ending, output=out / SUMMARY_JSON, **common)
                candidates.append(Candidate(name, out, (a, b), summary))

    best = _best(candidates)
    log.info("Best: %s (mean foreground Dice %.5f)", best.name, best.score)
    determine(best.source, ref_dir, file_ending=ending, **common)
    post = load_summary(best.source / POSTPROCESSED_DIR / SUMMARY_JSON)
    info = InferenceInformation(
        dataset=dataset, folds=folds, considered_models=tuple(models), ensembling_allowed=allow_ensembling,
        all_results={c.name: c.score for c in candidates}, best=best.name, selected_models=best.members,
        result_on_crossval_pre_pp=best.score, result_on_crossval_post_pp=post.score,
        postprocessing_file=str(best.source / POSTPROCESSING_JSON), source_folder=str(best.source),
        nsd_tolerance_mm=nsd_tolerance_mm,
        extra={"sources": {c.name: str(c.source) for c in candidates},
               "nsd": {c.name: c.summary.foreground_mean.get("NSD", math.nan) for c in candidates}})
    results = workspace.results_dataset(dataset)
    save_inference_information(results / INFERENCE_INFORMATION_JSON, info,
                               provenance=make_provenance("autounet.ensembling.find_best"))
    stages = {m.identifier: previous_stage(model_dirs[m], m.configuration) for m in best.members}
    text = instructions_text(info, previous_stages=stages, workspace_flag=workspace_flag)
    write_bytes_atomic(results / INFERENCE_INSTRUCTIONS_TXT, text.encode("utf-8"))
    return info


def _predict(info: InferenceInformation, model: TrainedModel, *, output: str, save_probabilities: bool,
             prev_stage_folder: str | None, configuration: str | None = None,
             input_folder: str = "INPUT_FOLDER", workspace_flag: str | None = None) -> str:
    parts = ["autounet", "predict", "-i", input_folder, "-o", output, "-d", info.dataset,
             "-c", configuration or model.configuration, "--plans", model.plans, "--trainer", model.trainer,
             "-f", *(str(f) for f in info.folds)]
    if prev_stage_folder is not None:
        parts += ["--prev-stage", prev_stage_folder]
    if save_probabilities:
        parts.append("--save-probabilities")
    if workspace_flag is not None:
        parts += ["--workspace", workspace_flag]
    return " ".join(parts)


def inference_commands(info: InferenceInformation, *, previous_stages: Mapping[str, str | None],
                       workspace_flag: str | None = None, input_folder: str = "INPUT_FOLDER",
                       output_folder: str = "OUTPUT_FOLDER") -> list[str]:
    """The exact commands that reproduce the selected model (or ensemble) and its post-processing.

    A cascade member first predicts its previous stage (``3d_lowres``) into ``<output>_<STAGE>`` and passes that
    folder with ``--prev-stage`` (``autounet predict`` reuses the predictions found there).
    """
    commands = []
    outputs = []
    ensemble = info.is_ensemble
    for j, model in enumerate(info.selected_models, start=1):
        out = f"{output_folder}_MODEL_{j}" if ensemble else output_folder
        outputs.append(out)
        prev = previous_stages.get(model.identifier)
        prev_folder = None
        if prev is not None:
            prev_folder = f"{out}_{prev.upper()}"
            commands.append(_predict(info, model, output=prev_folder, save_probabilities=False,
                                     prev_stage_folder=None, configuration=prev, input_folder=input_folder,
                                     workspace_flag=workspace_flag))
        commands.append(_predict(info, model, output=out, save_probabilities=ensemble, prev_stage_folder=prev_folder,
                                 input_folder=input_folder, workspace_flag=workspace_flag))
    if ensemble:
        commands.append(" ".join(["autounet", "ensemble", "-i", *outputs, "-o", output_folder]))
    commands.append(" ".join(["autounet", "postprocess", "-i", output_folder, "-o", f"{output_folder}_PP",
                              "--decision", info.postprocessing_file]))
    return commands


def instructions_text(info: InferenceInformation, *, previous_stages: Mapping[str, str | None],
                      workspace_flag: str | None = None) -> str:
    """``inference_instructions.txt``: the scores, then one command per line (lines starting with ``autounet``)."""
    lines = ["Cross-validation results (mean foreground Dice):"]
    lines += [f"  {name}: {score:.5f}" for name, score in info.all_results.items()]
    lines += ["", f"Best: {info.best}",
              f"  before post-processing: {info.result_on_crossval_pre_pp:.5f}",
              f"  after post-processing:  {info.result_on_crossval_post_pp:.5f}", ""]
    commands = inference_commands(info, previous_stages=previous_stages, workspace_flag=workspace_flag)
    if info.is_ensemble:
        lines.append("An ensemble won. Predict with each member (saving probabilities), then ensemble:")
    else:
        lines.append("Predict with:")
    lines += ["", *commands[:-1], "", "Then post-process:", "", commands[-1], ""]
    return "\n".join(lines)
