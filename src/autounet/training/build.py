"""Assemble a training run from a workspace: plans, labels, splits, loaders, augmentation, network, optimiser.

:func:`train` is the stage's entry point (``autounet.training.train``). It writes the result folder in the
reference's layout::

    results/DatasetXXX_Name/<Trainer>__<Plans>__<Config>/
        plans.json  dataset.json  dataset_fingerprint.json
        fold_X/  training_config.json  training_log_*.txt  training_log.jsonl  progress.png
                 checkpoint_final.pth  checkpoint_best.pth  [checkpoint_latest.pth while training]

The final full-volume validation is not done here (the pipeline runs inference on the fold's validation cases).
"""

from __future__ import annotations

import secrets
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import torch

from autounet._atomic import atomic_path, write_json_atomic
from autounet._log import get_logger
from autounet.errors import PlansError, UsageError
from autounet.networks.precision import autocast_dtype
from autounet.planning.store import read_plans_file
from autounet.schemas.plans import ConfigurationPlan, Plans
from autounet.schemas.training import (
    RuntimeSettings,
    TrainingConfig,
    TrainingRecipe,
    check_device,
    save_training_config,
)
from autounet.training import checkpoint as ckpt
from autounet.training import ddp
from autounet.training.data import BatchLoader, PatchStore, PreviousStage
from autounet.training.logging import RunLogger
from autounet.training.loop import Run, fit, iteration_seed
from autounet.training.sampler import rank_batch_and_oversampling
from autounet.workspace import (
    DATASET_JSON,
    DEFAULT_PLANS_NAME,
    FINGERPRINT_JSON,
    PLANS_JSON,
    PREDICTED_NEXT_STAGE_DIR,
    TRAINING_CONFIG_JSON,
    Workspace,
    fold_dir_name,
)

log = get_logger(__name__)
INIT_STREAM = 7


@dataclass(frozen=True)
class Inputs:
    """What a run reads: plans, the configuration, label semantics, dataset.json and the case store folder."""

    plans: Plans
    plan: ConfigurationPlan
    labels: Any
    dataset_json: dict[str, Any]
    data_folder: Path


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU; ``cuda:N`` selects GPU N; an unavailable device raises
    ``UsageError``."""
    check_device(name)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise UsageError(f"--device {name} requested but no CUDA device is available.")
        device = torch.device(name)
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise UsageError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) are visible.")
        return device
    if name == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise UsageError("--device mps requested but MPS is not available.")
    return torch.device(name)


def load_inputs(workspace: Workspace, dataset_name: str, configuration: str, plans_name: str, *,
                check_data: bool = True) -> Inputs:
    """Read plans, the resolved configuration, ``dataset.json`` and the label semantics of a dataset."""
    from autounet.labels import LabelSpec
    from autounet.schemas._base import read_json
    from autounet.schemas.dataset import load_dataset_spec

    plans = read_plans_file(workspace.plans_file(dataset_name, plans_name))
    plan = plans.configuration(configuration)
    ds_path = workspace.preprocessed_dataset_json(dataset_name)
    labels = LabelSpec.from_dataset_spec(load_dataset_spec(ds_path))
    folder = workspace.preprocessed_data(dataset_name, plan.data_identifier)
    if not folder.is_dir() and check_data:
        raise UsageError(f"Preprocessed data {folder} not found: run `autounet preprocess -d {dataset_name} "
                         f"-c {configuration}` first.")
    return Inputs(plans=plans, plan=plan, labels=labels, dataset_json=read_json(ds_path, what="dataset.json"),
                  data_folder=folder)


def _configure_torch(runtime: RuntimeSettings, device: torch.device) -> None:
    if runtime.threads is not None:
        torch.set_num_threads(runtime.threads)
    if device.type == "cuda" and device.index is not None:
        torch.cuda.set_device(device)
    if runtime.deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
        torch.backends.cudnn.benchmark = False
        torch.backends.cudnn.deterministic = True
    elif device.type == "cuda":
        torch.backends.cudnn.benchmark = True


def portable_plans(plans: Plans) -> dict[str, Any]:
    """The plans as a model folder stores them: the reference's (nnU-Net) schema, so that nnU-Net loads the
    folder (autounet reads both); our schema when a component has no reference equivalent."""
    from autounet.planning.reference import export_plans

    try:
        return export_plans(plans)
    except PlansError as exc:
        log.warning("plans.json keeps the autounet schema (the folder will not load in nnU-Net): %s", exc)
        return plans.to_dict()


def _copy_model_dir_files(workspace: Workspace, dataset_name: str, plans: Plans, model_dir: Path) -> None:
    """``plans.json``, ``dataset.json`` and ``dataset_fingerprint.json`` beside the folds (rank 0)."""
    model_dir.mkdir(parents=True, exist_ok=True)
    write_json_atomic(model_dir / PLANS_JSON, portable_plans(plans))
    for name, src in ((DATASET_JSON, workspace.preprocessed_dataset_json(dataset_name)),
                      (FINGERPRINT_JSON, workspace.fingerprint_file(dataset_name))):
        if src.is_file():  # per-writer temporary: folds training at once (cluster tasks) share this folder
            with atomic_path(model_dir / name) as tmp:
                shutil.copyfile(src, tmp)


def _resume_config(given: TrainingConfig, content: ckpt.CheckpointRecord, continue_epochs: int) -> TrainingConfig:
    """The stored run's recipe with this invocation's runtime settings, and extended epochs."""
    stored = content.training_config.recipe if content.training_config is not None else given.recipe
    cfg = TrainingConfig(stored, given.runtime)
    if continue_epochs:
        cfg = cfg.replace(epochs=cfg.recipe.epochs + continue_epochs)
    return cfg


def train(workspace: Workspace, dataset_name: str, configuration: str, fold: int | str, *,
          config: TrainingConfig, plans_name: str = DEFAULT_PLANS_NAME, resume: bool = False, continue_epochs: int = 0,
          overwrite: bool = False, distributed: bool = False, store: PatchStore | None = None,
          time_budget: float | None = None, budget_final_validation: bool = True) -> Path:
    """Train one fold of one configuration; returns the fold folder.

    Args:
        workspace: the workspace (plans and preprocessed data must exist).
        dataset_name: ``DatasetXXX_Name``.
        configuration: a configuration of the plans (``3d_fullres``, ``2d``, ...).
        fold: 0..4 (or beyond: random 80:20) or ``"all"``.
        config: the recipe and runtime settings (``autounet.schemas.training.training_config``).
        plans_name: plans identifier.
        resume: continue from ``checkpoint_latest`` (or final / best) with all states restored.
        continue_epochs: with ``resume``, train N epochs more than the finished run had.
        overwrite: start from scratch even if the fold folder holds checkpoints.
        distributed: join the torchrun process group (one process per device).
        store: the case store to read (default: ``CaseStore`` of the configuration's preprocessed folder).
        time_budget: seconds for training and the final validation (fold 0-4); the schedule (epochs,
            iterations, validation batches) is derived from measured iteration times
            (:mod:`autounet.training.time_budget`). Ignored when resuming (the stored schedule continues).
        budget_final_validation: keep time in the budget for the final validation (off with ``--no-val``).
    """
    started = time.monotonic()
    if continue_epochs and not resume:
        resume = True
    from autounet.training.components import check_recipe

    check_recipe(config.recipe)
    device = resolve_device(config.runtime.device)
    dist_ctx = ddp.setup(device.type) if distributed else ddp.DistContext()
    if dist_ctx.enabled and device.type == "cuda":
        device = torch.device("cuda", dist_ctx.local_rank)
        torch.cuda.set_device(device)
    try:
        return _train(workspace, dataset_name, configuration, fold, config=config, plans_name=plans_name,
                      resume=resume, continue_epochs=continue_epochs, overwrite=overwrite, device=device,
                      dist_ctx=dist_ctx, store=store, time_budget=time_budget, started=started,
                      budget_final_validation=budget_final_validation)
    finally:
        ddp.teardown(dist_ctx)


def _train(workspace: Workspace, dataset_name: str, configuration: str, fold: int | str, *, config: TrainingConfig,
           plans_name: str, resume: bool, continue_epochs: int, overwrite: bool, device: torch.device,
           dist_ctx: ddp.DistContext, store: PatchStore | None, time_budget: float | None = None,
           started: float | None = None, budget_final_validation: bool = True) -> Path:
    inputs = load_inputs(workspace, dataset_name, configuration, plans_name, check_data=store is None)
    model_dir = workspace.model_dir(dataset_name, configuration, plans_name=plans_name,
                                    trainer=config.recipe.trainer_name)
    fold_dir = model_dir / fold_dir_name(fold)
    content = _resume_content(fold_dir, resume=resume, overwrite=overwrite, device=device)
    if content is not None:
        config = _resume_config(config, content, continue_epochs)
    if config.recipe.pretrained and content is not None:
        raise UsageError("--pretrained only applies to a fresh start, not to --resume.")
    _configure_torch(config.runtime, device)
    given_seed = config.runtime.seed
    seed = given_seed if given_seed is not None else content.seed if content is not None and content.seed is not None \
        else secrets.randbelow(2**31)
    seed = ddp.broadcast_int(seed, dist_ctx, device)
    if dist_ctx.is_main:
        _copy_model_dir_files(workspace, dataset_name, inputs.plans, model_dir)
        save_training_config(fold_dir / TRAINING_CONFIG_JSON, config)
    run = build_run(workspace, dataset_name, inputs, fold, fold_dir=fold_dir, config=config, device=device,
                    dist_ctx=dist_ctx, seed=seed, store=store)
    if time_budget is not None and content is None:  # --time-budget hook (autounet.training.time_budget)
        from autounet.training import time_budget as budget

        budget.apply(run, time_budget, patch_size=inputs.plan.patch_size, started=started,
                     final_validation=budget_final_validation and fold != "all")
        run.config = run.config.replace(**{k: ddp.broadcast_int(int(getattr(run.config.recipe, k)), dist_ctx, device)
                                           for k in ("epochs", "iterations_per_epoch", "val_iterations")})
        if dist_ctx.is_main:
            save_training_config(fold_dir / TRAINING_CONFIG_JSON, run.config)
    try:
        return fit(run, resume_from=content)
    finally:
        run.train_loader.close()
        if run.val_loader is not None:
            run.val_loader.close()


def _resume_content(fold_dir: Path, *, resume: bool, overwrite: bool,
                    device: torch.device) -> ckpt.CheckpointRecord | None:
    found = ckpt.find_resume_checkpoint(fold_dir) if fold_dir.is_dir() else None
    if resume:
        if found is None:
            log.warning("--resume: no checkpoint in %s; training from scratch.", fold_dir)
            return None
        log.info("Resuming from %s.", found)
        return ckpt.load_checkpoint(found, map_location=device)
    if found is not None and not overwrite:
        raise UsageError(f"{fold_dir} already holds {found.name}. Use --resume to continue it (or "
                         "--continue-epochs N to extend a finished run), or delete the folder to start over.")
    return None


def build_run(workspace: Workspace, dataset_name: str, inputs: Inputs, fold: int | str, *, fold_dir: Path,
              config: TrainingConfig, device: torch.device, dist_ctx: ddp.DistContext, seed: int,
              store: PatchStore | None = None) -> Run:
    """Make every component of a run (loaders, augmentation, network, optimiser, loss) for :func:`fit`."""
    from autounet import augmentation, networks
    from autounet.training import components
    from autounet.training.splits import fold_cases

    plan, labels = inputs.plan, inputs.labels
    recipe, runtime = config.recipe, config.runtime
    if store is None:
        from autounet.preprocessing import CaseStore

        plans_flag = f" --plans {inputs.plans.plans_name}" if inputs.plans.plans_name != "nnUNetPlans" else ""
        store = CaseStore(inputs.data_folder,
                          repair=f"autounet preprocess {dataset_name} -c {plan.name}{plans_flag}")
    if dist_ctx.is_main:
        train_ids, val_ids = fold_cases(workspace.splits_file(dataset_name), store.case_ids(), fold)
    ddp.barrier(dist_ctx)
    if not dist_ctx.is_main:
        train_ids, val_ids = fold_cases(workspace.splits_file(dataset_name), store.case_ids(), fold)
    cascade = plan.previous_stage is not None
    global_batch = recipe.batch_size or plan.batch_size
    batch, oversample = rank_batch_and_oversampling(global_batch, recipe.oversample_foreground, dist_ctx.rank,
                                                    dist_ctx.world) if dist_ctx.enabled else \
        (global_batch, recipe.oversample_foreground)
    aug = augmentation.build(
        recipe.augmentation, patch_size=plan.patch_size,
        deep_supervision_strides=plan.network.strides if recipe.deep_supervision else None,
        use_mask_for_norm=[bool(c.params.get("use_mask_for_norm", False)) for c in plan.normalization],
        cascade_labels=labels.foreground_labels if cascade else None,
        regions=labels.regions if labels.has_regions else None,
        ignore_label=labels.ignore_label if labels.has_regions else None)
    previous = None
    if cascade:
        prev_dir = workspace.model_dir(dataset_name, str(plan.previous_stage), plans_name=inputs.plans.plans_name,
                                       trainer=recipe.trainer_name) / PREDICTED_NEXT_STAGE_DIR / plan.name
        previous = PreviousStage(prev_dir)
    common: dict[str, Any] = dict(batch_size=batch, final_patch_size=plan.patch_size, oversample=oversample, seed=seed,
                  probabilistic=recipe.probabilistic_oversampling, has_ignore=labels.ignore_label is not None,
                  workers=runtime.loader_threads, prefetch=runtime.prefetch, previous_stage=previous,
                  pin_memory=device.type == "cuda", label_values=getattr(labels, "expected_values", None))
    train_loader = BatchLoader(store, train_ids, patch_size=aug.initial_patch_size, stream=2 * dist_ctx.rank,
                               **common)
    val_loader = BatchLoader(store, val_ids, patch_size=plan.patch_size, stream=2 * dist_ctx.rank + 1, **common) \
        if recipe.val_iterations else None

    in_channels = len(plan.normalization) + (len(labels.foreground_labels) if cascade else 0)
    torch.manual_seed(iteration_seed(seed, 0, INIT_STREAM, 0, 0))  # the same initial weights for the same seed
    module = networks.build(plan.network, in_channels=in_channels, num_outputs=labels.num_outputs,
                            deep_supervision=recipe.deep_supervision, channels_last=runtime.channels_last).to(device)
    if recipe.pretrained:
        copied = ckpt.load_pretrained(module, recipe.pretrained)
        log.info("Initialised %d tensors from %s.", len(copied), recipe.pretrained)
    model: torch.nn.Module = module
    compiled = runtime.compile and device.type == "cuda"
    if dist_ctx.enabled:
        model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)
    if compiled:
        # torch.compile returns an OptimizedModule (an nn.Module) for a module; its stubs only say Callable.
        model = cast(torch.nn.Module, torch.compile(model))
    optimizer = components.build_optimizer(recipe, module.parameters())
    amp_dtype = training_amp_dtype(runtime.amp, device)
    scaler = torch.amp.GradScaler("cuda") if amp_dtype == torch.float16 else None
    loss_fn, dice_stats = _loss_components(recipe, labels, batch_dice=plan.batch_dice,
                                           scales=aug.deep_supervision_scales if recipe.deep_supervision else None,
                                           ddp=dist_ctx.enabled, compiled=compiled)
    lr_at = components.build_schedule(recipe)

    def augment(data: torch.Tensor, seg: torch.Tensor, generator: torch.Generator) -> tuple[torch.Tensor, Any]:
        out = aug(data, seg, generator=generator)
        return _memory_format(out.image, runtime.channels_last), out.target

    def prepare(data: torch.Tensor, seg: torch.Tensor) -> tuple[torch.Tensor, Any]:
        out = aug.validation(data, seg)
        return _memory_format(out.image, runtime.channels_last), out.target

    extra = {
        "init_args": {"plans": portable_plans(inputs.plans), "configuration": plan.name, "fold": fold,
                      "dataset_json": inputs.dataset_json, "device": str(device)},
        "trainer_name": recipe.trainer_name,
        "inference_allowed_mirroring_axes": tuple(aug.mirror_axes),
    }
    logger = RunLogger(fold_dir, enabled=dist_ctx.is_main)
    logger.text(f"{dataset_name} {plan.name} fold {fold}: {len(train_ids)} training / {len(val_ids)} validation "
                f"cases; batch {batch} x {dist_ctx.world} process(es), patch {tuple(aug.initial_patch_size)} -> "
                f"{tuple(plan.patch_size)}, device {device}, seed {seed}; "
                f"{recipe.epochs} epochs x {recipe.iterations_per_epoch} iterations, lr {recipe.initial_lr}, "
                f"{_precision_name(amp_dtype)}")
    return Run(fold_dir=fold_dir, config=config, model=model, module=module, optimizer=optimizer, scaler=scaler,
               loss_fn=loss_fn, dice_stats=dice_stats, lr_at=lr_at, augment=augment, prepare=prepare,
               train_loader=train_loader, val_loader=val_loader, device=device, seed=seed, dist=dist_ctx,
               checkpoint_extra=extra, logger=logger, progress=runtime.progress, amp_dtype=amp_dtype,
               network_spec=plan.network)


def training_amp_dtype(amp: bool, device: torch.device) -> torch.dtype | None:
    """Mixed precision of a training run: fp16 with a gradient scaler on CUDA (as the reference), bf16 on CPUs with
    native bf16 (about 2x faster steps, no scaler needed), else float32. ``amp=False`` (``--no-amp``): float32."""
    if not amp:
        return None
    if device.type == "cuda":
        return torch.float16
    return autocast_dtype("auto", device, cpu_auto=True)


def _precision_name(dtype: torch.dtype | None) -> str:
    return {None: "float32", torch.float16: "mixed precision fp16", torch.bfloat16: "mixed precision bf16"}[dtype]


def _memory_format(x: torch.Tensor, channels_last: bool) -> torch.Tensor:
    if not channels_last:
        return x
    fmt = torch.channels_last_3d if x.ndim == 5 else torch.channels_last
    return x.contiguous(memory_format=fmt)


def _loss_components(recipe: TrainingRecipe, labels: Any, *, batch_dice: bool, scales: Any, ddp: bool,
                     compiled: bool) -> tuple[Any, Any]:
    """The recipe's loss (with deep-supervision weights) and the pseudo-Dice counts."""
    from autounet.training import components, losses

    loss = components.build_loss(recipe, labels, batch_dice=batch_dice, deep_supervision_scales=scales, ddp=ddp,
                                 compiled=compiled)

    def dice_stats(output: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return losses.pseudo_dice_counts(output, target, has_regions=labels.has_regions,
                                         ignore_label=labels.ignore_label)

    return loss, dice_stats


__all__ = ["Inputs", "build_run", "load_inputs", "resolve_device", "train"]
