"""Top-level Python API: one function per CLI command, with the same names and options.

Each function resolves the workspace once (``workspace=`` argument, else ``AUTOUNET_HOME``, else the reference's
``nnUNet_*`` variables, else ``./autounet_workspace``) and calls the stage API that does the work. Example::

    import autounet
    autounet.import_dataset("images/", "labels/", dataset_id=4, name="Hippocampus", channels=["MRI"],
                            label_values={"background": 0, "Anterior": 1, "Posterior": 2}, workspace="ws")
    summary = autounet.run(4, configurations=["2d"], budget="short", workspace="ws")
    autounet.predict("new_images/", "predictions/", dataset=4, configuration="2d", workspace="ws")
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autounet.workspace import Workspace, resolve_workspace

if TYPE_CHECKING:
    from autounet.dataset import ImportResult, VerificationReport
    from autounet.evaluation import EvaluationSummary
    from autounet.inference import RunReport
    from autounet.pipeline import RunSummary
    from autounet.schemas.fingerprint import Fingerprint
    from autounet.schemas.plans import Plans
    from autounet.schemas.results import InferenceInformation

WorkspaceLike = Workspace | str | os.PathLike[str] | None


def _ws(workspace: WorkspaceLike) -> Workspace:
    if isinstance(workspace, Workspace):
        return workspace.ensure()
    return resolve_workspace(workspace).ensure()


def verify(dataset: str | int | os.PathLike[str], *, workspace: WorkspaceLike = None,
           workers: int = 2) -> VerificationReport:
    """``autounet verify``: check a raw dataset and report every problem (never modifies anything)."""
    from autounet.dataset import verify as _verify

    return _verify(dataset, workspace=_ws(workspace), workers=workers)


def import_dataset(images: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], labels: str | os.PathLike[str],
                   *, dataset_id: int, name: str, channels: Sequence[str] = (),
                   label_values: Mapping[str, Any] | None = None, strict: bool = False, link: bool = False,
                   workspace: WorkspaceLike = None) -> ImportResult:
    """``autounet import``: build ``raw/DatasetXXX_Name`` from a folder of images and a folder of labels."""
    from autounet.dataset import import_folders

    image_dirs = [Path(images)] if isinstance(images, (str, os.PathLike)) else [Path(p) for p in images]
    return import_folders(image_dirs if len(image_dirs) > 1 else image_dirs[0], Path(labels), workspace=_ws(workspace),
                          dataset_id=dataset_id, name=name, channels=channels, label_values=label_values,
                          strict=strict, link=link)


def fingerprint(dataset: str | int | os.PathLike[str], *, clean: bool = False, workers: int = 2,
                workspace: WorkspaceLike = None) -> Fingerprint:
    """``autounet fingerprint``: extract (or reuse) ``dataset_fingerprint.json``."""
    from autounet.dataset import open_raw_dataset
    from autounet.fingerprint import ensure_fingerprint

    ws = _ws(workspace)
    raw = open_raw_dataset(dataset, ws)
    return ensure_fingerprint(raw, ws.fingerprint_file(raw.name), clean=clean, workers=workers)


def plan(dataset: str | int | os.PathLike[str], *, preset: str = "default", gpu_memory_gb: float | None = None,
         plans_name: str | None = None, target_spacing: Sequence[float] | None = None,
         configurations: Sequence[str] | None = None, preprocess: bool = False, workers: int = 2,
         workspace: WorkspaceLike = None) -> Plans:
    """``autounet plan [--preprocess]``: fingerprint, plan and write the plans (and preprocess if asked)."""
    from autounet.planning.store import plan_dataset

    ws = _ws(workspace)
    result, _ = plan_dataset(ws, dataset, preset=preset, gpu_memory_gb=gpu_memory_gb, plans_name=plans_name,
                             target_spacing=target_spacing, configurations=configurations, workers=workers)
    if preprocess:
        from autounet.preprocessing import run as _preprocess

        names = list(configurations) if configurations else result.plans.configuration_names()
        _preprocess(ws, result.plans.dataset_name, result.plans, names, workers=workers)
    return result.plans


def preprocess(dataset: str | int | os.PathLike[str], configurations: Sequence[str], *,
               plans_name: str = "nnUNetPlans", workers: int = 2, clean: bool = False,
               workspace: WorkspaceLike = None) -> list[Any]:
    """``autounet preprocess``: preprocess the labelled cases for ``configurations`` (resumable)."""
    from autounet.preprocessing import run as _preprocess
    from autounet.schemas.plans import load_plans

    ws = _ws(workspace)
    name = ws.find_dataset(dataset)
    plans = load_plans(ws.plans_file(name, plans_name))
    return _preprocess(ws, name, plans, configurations, workers=workers, clean=clean)


def train(dataset: str | int, configuration: str, fold: int | str, *, budget: str = "reference",
          plans_name: str = "nnUNetPlans", resume: bool = False, validate: bool = True,
          workspace: WorkspaceLike = None, time_budget: str | float | None = None, **overrides: Any) -> Path:
    """``autounet train``: train one fold (``overrides`` are TrainingConfig fields), then validate it.

    ``time_budget`` (``"40m"`` or seconds) sizes the schedule from measured iteration times (``budget="short"``
    is 10 minutes). Returns the fold folder. ``validate`` runs the fold's validation cases through the inference pipeline and
    writes ``validation/summary.json`` (skipped for fold ``all``).
    """
    from autounet.pipeline import ValidationOptions, validate_fold
    from autounet.schemas.plans import load_plans
    from autounet.training import train as _train
    from autounet.training.time_budget import resolve_config

    ws = _ws(workspace)
    name = ws.find_dataset(dataset)
    ndim = load_plans(ws.plans_file(name, plans_name)).configuration(configuration).ndim
    config, seconds = resolve_config(budget, time_budget, ndim, overrides)
    fold_dir = _train(ws, name, configuration, fold, config=config, plans_name=plans_name, resume=resume,
                      time_budget=seconds, budget_final_validation=validate)
    if validate and str(fold) != "all":
        validate_fold(ws, name, configuration, fold, plans_name=plans_name, trainer=config.trainer_name,
                      options=ValidationOptions(device=config.device))
    return fold_dir


def predict(source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], output: str | os.PathLike[str], *,
            dataset: str | int | None = None, configuration: str | None = None,
            model_dir: str | os.PathLike[str] | None = None, folds: Sequence[int | str] | None = None,
            plans_name: str = "nnUNetPlans", checkpoint: str = "final", use_mirroring: bool = True,
            save_probabilities: bool = False, overwrite: bool = False, device: str = "auto",
            workspace: WorkspaceLike = None) -> RunReport:
    """``autounet predict``: segment a folder (or files, or DICOM series) with a trained model.

    Give either ``model_dir`` or ``dataset`` + ``configuration`` (the model folder in the workspace).
    """
    from autounet.errors import UsageError
    from autounet.inference import Predictor

    if model_dir is None:
        if dataset is None or configuration is None:
            msg = "predict needs model_dir, or dataset and configuration."
            raise UsageError(msg)
        ws = _ws(workspace)
        model_dir = ws.model_dir(ws.find_dataset(dataset), configuration, plans_name=plans_name)
    predictor = Predictor.from_model_dir(model_dir, folds=folds, checkpoint=checkpoint, device=device,
                                         use_mirroring=use_mirroring)
    return predictor.predict_folder(source, output, save_probabilities=save_probabilities, overwrite=overwrite)


def evaluate(pred_dir: str | os.PathLike[str], ref_dir: str | os.PathLike[str], *, dataset: str | int | None = None,
             labels: Any = None, output: str | os.PathLike[str] | None = None,
             workspace: WorkspaceLike = None, **options: Any) -> EvaluationSummary:
    """``autounet evaluate``: metrics of a folder of predictions (labels from ``dataset`` or given)."""
    from autounet.dataset import open_raw_dataset
    from autounet.errors import UsageError
    from autounet.evaluation import evaluate as _evaluate
    from autounet.labels import LabelSpec

    if labels is None:
        if dataset is None:
            msg = "evaluate needs labels or a dataset to read them from."
            raise UsageError(msg)
        labels = LabelSpec.from_dataset_spec(open_raw_dataset(dataset, _ws(workspace)).spec)
    return _evaluate(pred_dir, ref_dir, labels=labels, output=output, **options)


def find_best(dataset: str | int, *, configurations: Sequence[str] = ("2d", "3d_fullres", "3d_lowres",
                                                                       "3d_cascade_fullres"),
              folds: Sequence[int] = (0, 1, 2, 3, 4), workspace: WorkspaceLike = None,
              **options: Any) -> InferenceInformation:
    """``autounet find-best``: choose the best configuration or pair ensemble and write the instructions."""
    from autounet.ensembling.find_best import find_best as _find_best

    ws = _ws(workspace)
    return _find_best(ws, ws.find_dataset(dataset), configurations=configurations, folds=folds, **options)


def run(dataset: str | int | os.PathLike[str], *, configurations: Sequence[str] | None = None,
        folds: Sequence[int] = (0, 1, 2, 3, 4), preset: str = "default", budget: str = "full",
        devices: Sequence[str] = ("auto",), workers: int = 2, workspace: WorkspaceLike = None,
        time_budget: str | float | None = None, **training_overrides: Any) -> RunSummary:
    """``autounet run``: the whole method on a raw dataset (resumable); returns what was done and chosen.

    ``time_budget`` (``"8h"`` or seconds) is divided over the trainings (see ``autounet run --time-budget``).
    """
    from autounet.pipeline import RunOptions
    from autounet.pipeline import run as _run
    from autounet.training.time_budget import parse_duration

    if isinstance(time_budget, str):
        time_budget = parse_duration(time_budget)
    extra = {"configurations": tuple(configurations)} if configurations else {}
    options = RunOptions(folds=tuple(folds), preset=preset, budget=budget, devices=tuple(devices), workers=workers,
                         training_overrides=dict(training_overrides), time_budget=time_budget, **extra)
    return _run(_ws(workspace), dataset, options=options)
