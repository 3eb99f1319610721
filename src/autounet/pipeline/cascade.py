"""The cascade hand-over: ``3d_lowres`` predictions in the geometry of ``3d_cascade_fullres`` (facts §5.9, §5.10).

A cascade's full-resolution stage sees the low-resolution stage's segmentation as extra input channels. For
training it reads, per case, the segmentation that the ``3d_lowres`` model of the fold where the case was a
*validation* case predicted, already in the next stage's preprocessed geometry::

    results/<Dataset>/<Trainer>__<Plans>__3d_lowres/predicted_next_stage/3d_cascade_fullres/<case>.b2nd

so every fold of the low-resolution stage must be trained before any fold of the cascade. As the reference
(``nnUNetTrainer.perform_actual_validation`` → ``resample_and_save``), for each validation case of a low-resolution
fold: the stored low-resolution preprocessed case is predicted (sliding window, mirroring, the fold's checkpoint);
the logits are resampled straight to the shape of the case in the next stage's preprocessed folder with the low
resolution configuration's ``resampling_probabilities`` (the separate-z rule sees the low-resolution spacing on both
sides, as the reference passes it); the result is segmented (argmax, or regions in ``regions_class_order``) and
stored as a ``(z, y, x)`` uint8/uint16 blosc2 array. Resampling and segmentation run slab by slab on the logits'
device, so memory stays bounded by the logits and the output.

A stored file is current when it is newer than the checkpoint that made it; older files (a retrained fold) are
predicted again.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from autounet._atomic import atomic_path
from autounet._log import get_logger
from autounet.errors import DatasetError, PlansError, UsageError
from autounet.labels import LabelSpec
from autounet.schemas.plans import ComponentSpec, Plans
from autounet.workspace import DEFAULT_PLANS_NAME, DEFAULT_TRAINER, PREDICTED_NEXT_STAGE_DIR, Workspace, fold_dir_name

if TYPE_CHECKING:
    from autounet.preprocessing import CaseStore

log = get_logger(__name__)

#: endings the cascade's training reader accepts, in the order it looks for them (``training.data.PreviousStage``)
NEXT_STAGE_ENDINGS = (".b2nd", ".npy", ".npz")


@dataclass
class NextStageReport:
    """What :func:`write_next_stage_predictions` did for one low-resolution fold.

    Attributes:
        folders: next-stage configuration → folder written to.
        written: cases predicted and stored.
        skipped: cases whose files were already current.
        missing: ``<next stage>/<case>`` pairs skipped because the case is not in that stage's preprocessed folder.
        seconds: wall time.
    """

    folders: dict[str, Path] = field(default_factory=dict)
    written: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    seconds: float = 0.0


# ---- paths and plans ----------------------------------------------------------------------------------------------
def next_stage_dir(workspace: Workspace, dataset_name: str, configuration: str, next_stage: str, *,
                   plans_name: str = DEFAULT_PLANS_NAME, trainer: str = DEFAULT_TRAINER) -> Path:
    """``results/<Dataset>/<Trainer>__<Plans>__<configuration>/predicted_next_stage/<next_stage>``."""
    model_dir = workspace.model_dir(dataset_name, configuration, plans_name=plans_name, trainer=trainer)
    return model_dir / PREDICTED_NEXT_STAGE_DIR / next_stage


def previous_stages(plans: Plans, configurations: Sequence[str]) -> dict[str, str]:
    """``{cascade: previous stage}`` for the cascades among ``configurations``.

    Raises:
        PlansError: a cascade's previous stage is not in the plans, or does not name the cascade in its
            ``next_stage`` (the two must point at each other, as in the reference).
    """
    out: dict[str, str] = {}
    for name in configurations:
        previous = plans.configuration(name).previous_stage
        if previous is None:
            continue
        if previous not in plans.configurations:
            msg = (f"Configuration {name!r} of plans {plans.plans_name!r} takes the predictions of {previous!r}, "
                   f"which is not in the plans (available: {', '.join(plans.configurations)}).")
            raise PlansError(msg)
        if name not in plans.configuration(previous).next_stage:
            msg = (f"Configuration {name!r} of plans {plans.plans_name!r} names {previous!r} as its previous stage, "
                   f"but {previous!r} does not list {name!r} in next_stage; add it there.")
            raise PlansError(msg)
        out[name] = previous
    return out


def with_previous_stages(plans: Plans, configurations: Sequence[str]) -> tuple[list[str], list[str]]:
    """``configurations`` with each cascade's previous stage added just before it when absent.

    Returns ``(configurations in training order, the previous stages that were added)``.
    """
    stages = previous_stages(plans, configurations)
    ordered: list[str] = []
    added: list[str] = []
    for name in configurations:
        previous = stages.get(name)
        if previous is not None and previous not in ordered:  # absent or listed later: goes before its cascade
            ordered.append(previous)
            if previous not in configurations:
                added.append(previous)
        if name not in ordered:
            ordered.append(name)
    return ordered, added


def split_folds(workspace: Workspace, dataset_name: str, case_ids: Sequence[str]) -> tuple[int, ...]:
    """The folds of ``splits_final.json`` (created with the reference's rule when absent).

    These are the low-resolution folds a cascade needs: together their validation cases must cover every case.

    Raises:
        DatasetError: some case is a validation case of no fold (a hand-written splits file), so no fold could
            predict its cascade input.
    """
    from autounet.training.splits import fold_cases, load_splits

    path = workspace.splits_file(dataset_name)
    fold_cases(path, case_ids, 0)  # creates the splits file when absent
    splits = load_splits(path)
    covered = {c for split in splits for c in split["val"]}
    uncovered = sorted(set(case_ids) - covered)
    if uncovered:
        shown = ", ".join(uncovered[:5]) + (" ..." if len(uncovered) > 5 else "")
        msg = (f"Splits file {path}: {len(uncovered)} case(s) ({shown}) are in no fold's validation set, so no "
               "3d_lowres fold predicts their cascade input. Give every case a validation fold.")
        raise DatasetError(msg)
    return tuple(range(len(splits)))


def folds_to_train(workspace: Workspace, dataset_name: str, plans: Plans, configurations: Sequence[str],
                   folds: Sequence[int]) -> dict[str, tuple[int, ...]]:
    """The folds to train per configuration: ``folds``, and for a stage that feeds a cascade also every fold of
    ``splits_final.json`` (a case's cascade input comes from the fold where it is a validation case)."""
    from autounet.preprocessing import CaseStore

    out = {c: tuple(folds) for c in configurations}
    for previous in sorted(set(previous_stages(plans, configurations).values())):
        store = CaseStore(workspace.preprocessed_data(dataset_name, plans.configuration(previous).data_identifier))
        every = split_folds(workspace, dataset_name, store.case_ids())
        out[previous] = tuple(sorted(set(out.get(previous, ())) | set(every)))
    return out


# ---- the numerics -------------------------------------------------------------------------------------------------
def next_stage_segmentation(logits: torch.Tensor | np.ndarray, target_shape: Sequence[int], *,
                            spacing: Sequence[float], labels: LabelSpec, resampling: ComponentSpec) -> np.ndarray:
    """Resample ``(K, z, y, x)`` logits to ``target_shape`` and segment them: a ``(z, y, x)`` uint8/uint16 map.

    Args:
        logits: low-resolution logits (CPU or CUDA tensor, or NumPy).
        target_shape: the next stage's preprocessed spatial shape.
        spacing: the low-resolution configuration's spacing; as in the reference it is both the current and the
            target spacing of the separate-z decision.
        labels: label semantics (argmax, or regions painted in ``regions_class_order``).
        resampling: the low-resolution configuration's ``resampling_probabilities`` component.
    """
    from autounet.inference.export import (
        DEFAULT_SLAB_BYTES,
        ProbabilityResampling,
        SlabResampler,
        resampling_orders,
        segment_slab,
        segmentation_dtype,
    )
    from autounet.preprocessing import resample

    x = torch.as_tensor(logits)
    target = tuple(int(s) for s in target_shape)
    if x.ndim != 4 or len(target) != 3 or len(spacing) != 3:
        msg = (f"Next-stage export needs 3D logits (K, z, y, x), a 3D target shape and a 3D spacing; got logits "
               f"{tuple(x.shape)}, target {target}, spacing {tuple(spacing)}.")
        raise UsageError(msg)
    spec = ProbabilityResampling.from_component(resampling)
    spacing = tuple(float(s) for s in spacing)
    if spec.slab_wise:
        orders = resampling_orders(spacing, spacing, spec)
    else:  # another registered resampler: whole array at once, then identity slabs
        x = torch.from_numpy(resample(x.float().cpu().numpy(), target, spacing, spacing, resampling))
        orders = (1, 1, 1)
    resampler = SlabResampler(x.shape[1:], target, orders)
    out = np.empty(target, dtype=segmentation_dtype(labels))
    row_bytes = 4 * x.shape[0] * (int(np.prod(target[1:])) * 3 + int(np.prod(x.shape[2:])) * 2)
    step = max(1, min(target[0], DEFAULT_SLAB_BYTES // max(1, row_bytes)))
    with torch.inference_mode():
        for start in range(0, target[0], step):
            stop = min(target[0], start + step)
            out[start:stop] = segment_slab(resampler.slab(x, start, stop).float(), labels).cpu().numpy()
    return out


def save_next_stage_segmentation(segmentation: np.ndarray, path: str | Path, *, patch_size: Sequence[int]) -> None:
    """Write a ``(z, y, x)`` segmentation as blosc2 ``.b2nd`` atomically, chunked for patch reads."""
    import blosc2

    from autounet.preprocessing.store import SEG_COMPRESSION, chunk_and_block_shapes

    seg = np.ascontiguousarray(segmentation)
    blocks, chunks = chunk_and_block_shapes((1, *seg.shape), patch_size, seg.itemsize)
    with atomic_path(path, suffix=".b2nd") as tmp:
        tmp.unlink(missing_ok=True)
        blosc2.asarray(seg, urlpath=str(tmp), mode="w", chunks=tuple(chunks[1:]), blocks=tuple(blocks[1:]),
                       cparams=SEG_COMPRESSION.cparams())


# ---- a fold ----------------------------------------------------------------------------------------------------
def _current(folder: Path, case: str, made_after: float) -> bool:
    """Whether ``folder`` holds the case's file, written after ``made_after`` (the checkpoint's time)."""
    for ending in NEXT_STAGE_ENDINGS:
        path = folder / f"{case}{ending}"
        if path.is_file():
            return path.stat().st_mtime >= made_after
    return False


def _checkpoint_time(model_dir: Path, fold: int | str, checkpoint: str) -> float:
    """Modification time of the fold's checkpoint (infinity when absent: nothing stored is current then)."""
    from autounet.inference.model import checkpoint_file_name

    path = model_dir / fold_dir_name(fold) / checkpoint_file_name(checkpoint)
    return path.stat().st_mtime if path.is_file() else float("inf")


def _fold_plan(workspace: Workspace, dataset_name: str, configuration: str, fold: int | str, *,
               plans_name: str) -> tuple[Plans, list[str], list[str]]:
    """The plans, the fold's validation cases and the next stages of ``configuration``."""
    from autounet.planning.store import read_plans_file
    from autounet.preprocessing import CaseStore
    from autounet.training.splits import fold_cases

    if str(fold) == "all":
        msg = "Fold 'all' has no validation cases: the cascade's inputs come from folds 0, 1, ... of 3d_lowres."
        raise UsageError(msg)
    plans = read_plans_file(workspace.plans_file(dataset_name, plans_name))
    config = plans.configuration(configuration)
    if not config.next_stage:
        msg = f"Configuration {configuration!r} of plans {plans_name!r} has no next_stage: it feeds no cascade."
        raise UsageError(msg)
    store = CaseStore(workspace.preprocessed_data(dataset_name, config.data_identifier))
    _, val_cases = fold_cases(workspace.splits_file(dataset_name), store.case_ids(), fold)
    return plans, val_cases, list(config.next_stage)


def pending_next_stage_cases(workspace: Workspace, dataset_name: str, configuration: str, fold: int | str, *,
                             plans_name: str = DEFAULT_PLANS_NAME, trainer: str = DEFAULT_TRAINER,
                             checkpoint: str = "final") -> list[str]:
    """Validation cases of ``fold`` without a current next-stage file for some next stage (empty: all done)."""
    _, val_cases, stages = _fold_plan(workspace, dataset_name, configuration, fold, plans_name=plans_name)
    made = _checkpoint_time(workspace.model_dir(dataset_name, configuration, plans_name=plans_name, trainer=trainer),
                            fold, checkpoint)
    folders = [next_stage_dir(workspace, dataset_name, configuration, s, plans_name=plans_name, trainer=trainer)
               for s in stages]
    return [c for c in val_cases if not all(_current(f, c, made) for f in folders)]


def write_next_stage_predictions(workspace: Workspace, dataset_name: str, lowres_configuration: str,
                                 fold: int | str, *, plans_name: str = DEFAULT_PLANS_NAME,
                                 trainer: str = DEFAULT_TRAINER,
                                 device: str | torch.device = "auto", checkpoint: str = "final",
                                 use_mirroring: bool = True, overwrite: bool = False) -> NextStageReport:
    """Predict the validation cases of a low-resolution ``fold`` into every next stage's ``predicted_next_stage``.

    Args:
        workspace / dataset_name: where the dataset's plans, preprocessed cases and models are.
        lowres_configuration: the configuration with ``next_stage`` (``3d_lowres``).
        fold: the trained fold (its validation cases are predicted).
        plans_name / trainer: identify the model folder.
        device: inference device (``auto``, ``cpu``, ``cuda``, ``cuda:N``).
        checkpoint: ``final``, ``best`` or ``latest``.
        use_mirroring: test-time mirroring (the reference's validation mirrors).
        overwrite: predict again even when a current file exists.

    Raises:
        DatasetError: a validation case is not in the low-resolution preprocessed folder, or was preprocessed with
            other plans (re-run preprocessing).
        CheckpointError: the fold has no such checkpoint.
    """
    from autounet.inference import Predictor
    from autounet.preprocessing import CaseStore, preprocessing_hash

    start = time.perf_counter()
    plans, val_cases, stages = _fold_plan(workspace, dataset_name, lowres_configuration, fold, plans_name=plans_name)
    model_dir = workspace.model_dir(dataset_name, lowres_configuration, plans_name=plans_name, trainer=trainer)
    report = NextStageReport(folders={s: next_stage_dir(workspace, dataset_name, lowres_configuration, s,
                                                        plans_name=plans_name, trainer=trainer) for s in stages})
    made = float("inf") if overwrite else _checkpoint_time(model_dir, fold, checkpoint)  # inf: none current
    todo = [c for c in val_cases if not all(_current(f, c, made) for f in report.folders.values())]
    report.skipped = [c for c in val_cases if c not in todo]
    if not todo:
        report.seconds = time.perf_counter() - start
        return report
    predictor = Predictor.from_model_dir(model_dir, folds=[fold], checkpoint=checkpoint, device=device,
                                         use_mirroring=use_mirroring)
    model = predictor.model
    source = CaseStore(workspace.preprocessed_data(dataset_name, model.configuration.data_identifier))
    digest = preprocessing_hash(model.plans, model.configuration, model.labels)
    targets = {s: CaseStore(workspace.preprocessed_data(dataset_name, plans.configuration(s).data_identifier))
               for s in stages}
    log.info("Predicting %d validation case(s) of %s fold %s for %s.", len(todo), lowres_configuration, fold,
             ", ".join(stages))
    for case in todo:
        wanted = {s: store for s, store in targets.items() if case in store}
        report.missing.extend(f"{s}/{case}" for s in stages if s not in wanted)
        if not wanted:
            log.warning("Case %s is in none of the next stages' preprocessed folders; preprocess %s first.", case,
                        ", ".join(stages))
            continue
        logits = predictor.predict_logits(_stored_case(source, case, digest))
        for stage, store in wanted.items():
            target = store.properties(case).shape_after_resampling
            seg = next_stage_segmentation(logits, target, spacing=model.configuration.spacing, labels=model.labels,
                                          resampling=model.configuration.resampling_probabilities)
            save_next_stage_segmentation(seg, report.folders[stage] / f"{case}.b2nd",
                                         patch_size=plans.configuration(stage).patch_size)
        del logits
        report.written.append(case)
    for item in report.missing:
        log.warning("Next stage: %s is not preprocessed; skipped (run the preprocessing of that configuration).",
                    item)
    report.seconds = time.perf_counter() - start
    return report


def _stored_case(store: CaseStore, case: str, digest: str) -> np.ndarray:
    """The low-resolution preprocessed data of ``case``, checked against the model's plans."""
    if case not in store:
        msg = (f"Case {case} is not in the preprocessed folder {store.folder}; run `autounet preprocess` for the "
               "low-resolution configuration first.")
        raise DatasetError(msg)
    props = store.properties(case)
    if props.plans_sha256 != digest:
        msg = (f"Case {case} in {store.folder} was preprocessed with other plans than the model's; re-run "
               "`autounet preprocess` for this configuration.")
        raise DatasetError(msg)
    return np.asarray(store.open(case).data[...], dtype=np.float32)
