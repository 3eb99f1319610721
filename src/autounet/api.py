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

import contextlib
import dataclasses
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autounet.workspace import DEFAULT_PLANS_NAME, Workspace, resolve_workspace

if TYPE_CHECKING:
    from autounet.dataset import ImportResult, VerificationReport
    from autounet.evaluation import EvaluationSummary
    from autounet.inference import RunReport
    from autounet.pipeline import FoldResult, RunSummary
    from autounet.schemas.fingerprint import Fingerprint
    from autounet.schemas.plans import Plans
    from autounet.schemas.results import InferenceInformation

WorkspaceLike = Workspace | str | os.PathLike[str] | None


def _ws(workspace: WorkspaceLike) -> Workspace:
    if isinstance(workspace, Workspace):
        return workspace.ensure()
    return resolve_workspace(workspace).ensure()


@contextlib.contextmanager
def on_cluster(cluster: str | None, *, cluster_config: str | os.PathLike[str] | None = None,
               workers: int = 2) -> Iterator[Any]:
    """Run the per-case work of every call inside the block where ``cluster`` says (the CLI's ``--cluster``).

    ``cluster``: ``None`` (local process pool), ``"local-dask"``, ``"tcp://HOST:8786"``, or ``"slurm"``/``"pbs"``/
    ``"sge"``/``"lsf"`` with ``cluster_config`` (YAML, see docs/cluster.md). Yields the executor (a Dask client).
    Example: ``with autounet.on_cluster("local-dask"): autounet.preprocess(4, ["3d_fullres"])``.
    """
    from autounet._parallel import using
    from autounet.pipeline.cluster import open_cluster

    with open_cluster(cluster, config=cluster_config, workers=workers) as executor, using(executor):
        yield executor


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
               plans_name: str = DEFAULT_PLANS_NAME, workers: int = 2, clean: bool = False,
               workspace: WorkspaceLike = None, cluster: str | None = None,
               cluster_config: str | os.PathLike[str] | None = None) -> list[Any]:
    """``autounet preprocess``: preprocess the labelled cases for ``configurations`` (resumable).

    ``cluster``/``cluster_config``: where the cases run (see :func:`on_cluster`).
    """
    from autounet.planning.store import read_plans_file
    from autounet.preprocessing import run as _preprocess

    ws = _ws(workspace)
    name = ws.find_dataset(dataset)
    plans = read_plans_file(ws.plans_file(name, plans_name))
    with on_cluster(cluster, cluster_config=cluster_config, workers=workers):
        return _preprocess(ws, name, plans, configurations, workers=workers, clean=clean)


def train(dataset: str | int, configuration: str, fold: int | str, *, budget: str = "full",
          plans_name: str = DEFAULT_PLANS_NAME, resume: bool = False, validate: bool = True,
          save_probabilities: bool = True, workspace: WorkspaceLike = None, time_budget: str | float | None = None,
          **settings: Any) -> FoldResult:
    """``autounet train``: train one fold, validate it, and write a cascade's next-stage inputs.

    ``settings`` are the recipe and runtime fields of ``docs/training.md`` (``epochs=``, ``optimizer="adamw"``,
    ``optimizer_params={...}``, ``device="cuda:1"``, ``seed=``, ...), overriding the ``budget``'s values
    (``full`` or ``short``). ``validate`` runs the fold's validation cases through the inference pipeline and
    writes ``validation/summary.json`` (skipped for fold ``all``). ``time_budget`` (``"40m"`` or seconds) sizes the
    schedule from measured iteration times (``budget="short"`` is 10 minutes). Returns the fold folder and
    validation Dice.
    """
    from autounet.pipeline import TrainingJob, ValidationOptions, run_training
    from autounet.pipeline.training import parse_fold
    from autounet.planning.store import read_plans_file
    from autounet.training.time_budget import resolve_config

    ws = _ws(workspace)
    name = ws.find_dataset(dataset)
    ndim = read_plans_file(ws.plans_file(name, plans_name)).configuration(configuration).ndim
    config, seconds = resolve_config(budget, time_budget, ndim, settings)
    job = TrainingJob(workspace=ws, dataset=name, configuration=configuration, fold=parse_fold(fold),
                      recipe=config.recipe, plans_name=plans_name, resume="yes" if resume else "no",
                      validation=ValidationOptions(save_probabilities=save_probabilities) if validate else None,
                      time_budget=seconds)
    return run_training(job, runtime=config.runtime)


def predict(source: str | os.PathLike[str] | Sequence[str | os.PathLike[str]], output: str | os.PathLike[str], *,
            dataset: str | int | None = None, configuration: str | None = None,
            model_dir: str | os.PathLike[str] | None = None, folds: Sequence[int | str] | None = None,
            plans_name: str = DEFAULT_PLANS_NAME, checkpoint: str = "final", use_mirroring: bool = True,
            save_probabilities: bool = False, overwrite: bool = False, device: str = "auto",
            backend: str = "torch", precision: str = "auto", threads: int | None = None,
            tile_batch: int | None = None, step: float = 0.5,
            workspace: WorkspaceLike = None, cluster: str | None = None,
            cluster_config: str | os.PathLike[str] | None = None) -> RunReport:
    """``autounet predict``: segment a folder (or files, or DICOM series) with a trained model.

    Give either ``model_dir`` (a model folder, or an ``.onnx`` file from ``export-model --format onnx`` with
    ``backend="onnxruntime"`` or ``"openvino"``) or ``dataset`` + ``configuration`` (the model folder in the
    workspace). ``backend``, ``precision``, ``threads``, ``tile_batch`` and ``step`` are those of
    :meth:`~autounet.inference.Predictor.from_model_dir`. With ``cluster`` (see :func:`on_cluster`) every case is a
    task; each worker loads the model once.
    """
    from autounet.errors import UsageError
    from autounet.inference import Predictor

    if model_dir is None:
        if dataset is None or configuration is None:
            msg = "predict needs model_dir, or dataset and configuration."
            raise UsageError(msg)
        ws = _ws(workspace)
        model_dir = ws.model_dir(ws.find_dataset(dataset), configuration, plans_name=plans_name)
    settings: dict[str, Any] = dict(checkpoint=checkpoint, use_mirroring=use_mirroring, backend=backend,
                                    precision=precision, threads=threads, tile_batch=tile_batch, step=step)
    if cluster is None:
        predictor = Predictor.from_model_dir(model_dir, folds=folds, device=device, **settings)
        return predictor.predict_folder(source, output, save_probabilities=save_probabilities, overwrite=overwrite)
    from autounet.inference.distributed import ModelSpec, predict_folder_on

    predictor = Predictor.from_model_dir(model_dir, folds=folds, device="cpu", **settings)
    spec = ModelSpec(str(model_dir), folds=tuple(predictor.model.folds), device=device, **settings)
    with on_cluster(cluster, cluster_config=cluster_config) as executor:
        return predict_folder_on(executor, predictor, spec, source, output, save_probabilities=save_probabilities,
                                 overwrite=overwrite)


def evaluate(pred_dir: str | os.PathLike[str], ref_dir: str | os.PathLike[str], *, dataset: str | int | None = None,
             labels: Any = None, output: str | os.PathLike[str] | None = None,
             workspace: WorkspaceLike = None, cluster: str | None = None,
             cluster_config: str | os.PathLike[str] | None = None, **options: Any) -> EvaluationSummary:
    """``autounet evaluate``: metrics of a folder of predictions (labels from ``dataset`` or given).

    ``cluster``/``cluster_config``: where the cases run (see :func:`on_cluster`).
    """
    from autounet.dataset import open_raw_dataset
    from autounet.errors import UsageError
    from autounet.evaluation import evaluate as _evaluate
    from autounet.labels import LabelSpec

    if labels is None:
        if dataset is None:
            msg = "evaluate needs labels or a dataset to read them from."
            raise UsageError(msg)
        labels = LabelSpec.from_dataset_spec(open_raw_dataset(dataset, _ws(workspace)).spec)
    with on_cluster(cluster, cluster_config=cluster_config, workers=int(options.get("workers", 2))):
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
        cluster: str | None = None, cluster_config: str | os.PathLike[str] | None = None,
        time_budget: str | float | None = None, **training_overrides: Any) -> RunSummary:
    """``autounet run``: the whole method on a raw dataset (resumable); returns what was done and chosen.

    ``cluster``/``cluster_config`` (see :func:`on_cluster`): per-case work and, on Dask, every training as a task
    needing one GPU. ``time_budget`` (``"8h"`` or seconds) is divided over the trainings (see ``autounet run
    --time-budget``).
    """
    from autounet.pipeline import RunOptions
    from autounet.pipeline import run as _run
    from autounet.training.time_budget import parse_duration

    if isinstance(time_budget, str):
        time_budget = parse_duration(time_budget)
    options = RunOptions(folds=tuple(folds), preset=preset, budget=budget, devices=tuple(devices), workers=workers,
                         training_overrides=dict(training_overrides), time_budget=time_budget)
    if configurations:
        options = dataclasses.replace(options, configurations=tuple(configurations))
    with on_cluster(cluster, cluster_config=cluster_config, workers=workers):
        return _run(_ws(workspace), dataset, options=options)
