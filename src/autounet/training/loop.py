"""The training loop: epochs of training steps, patch validation with the pseudo-Dice, checkpoints, interruption.

:func:`fit` runs a fully assembled :class:`Run` (network, optimiser, loss, loaders, ...), which
:mod:`autounet.training.build` makes from a workspace. Determinism: each training and validation iteration
reseeds torch from ``(seed, rank, stream, epoch, iteration)`` and the loaders derive their batches from the same
counters, so a resumed run (from an epoch end or from a Ctrl-C inside an epoch) continues exactly where the
uninterrupted one would be; with ``deterministic=True`` on the CPU the final weights are bit-identical.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from autounet._log import get_logger
from autounet._progress import Ticker
from autounet.errors import CheckpointError
from autounet.networks.reference_compat import (
    convert_reference_state_dict,
    to_reference_state_dict,
)
from autounet.schemas.training import TrainingConfig
from autounet.training import checkpoint as ckpt
from autounet.training import ddp
from autounet.training.data import Batch, BatchLoader
from autounet.training.logging import RunLogger, TrainingLog

log = get_logger(__name__)
LossFn = Callable[[Any, Any], torch.Tensor]
DiceStatsFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor, torch.Tensor]]
AugmentFn = Callable[[torch.Tensor, torch.Tensor, torch.Generator], tuple[torch.Tensor, Any]]
PrepareFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, Any]]
TRAIN_STREAM, VAL_STREAM = 0, 1


class TrainingInterrupted(KeyboardInterrupt):
    """Raised after Ctrl-C (or SIGTERM) once the run's state was saved to ``checkpoint_latest.pth``."""


@dataclass
class Run:
    """Everything :func:`fit` needs; built by :func:`autounet.training.build.build_run`.

    Attributes:
        fold_dir: output folder (``.../fold_X``).
        config: the run's recipe and runtime settings.
        model: the network as trained (possibly DDP-wrapped / compiled); ``module`` is the plain network.
        module: the plain network (saved in checkpoints).
        optimizer / scaler: the recipe's optimiser and the CUDA grad scaler (``None`` elsewhere).
        loss_fn: ``loss_fn(outputs, targets)``; outputs and targets are lists under deep supervision.
        dice_stats: per-class ``(tp, fp, fn)`` of the highest-resolution output against its target.
        lr_at: learning rate of an epoch (the recipe's schedule).
        augment: training batch pipeline on the device ``(data, seg, generator) -> (inputs, targets)``:
            augmentation, then masking, -1 → 0, cascade one-hot, regions and the deep-supervision targets.
        prepare: the validation pipeline ``(data, seg) -> (inputs, targets)`` (the same steps, no augmentation).
        train_loader / val_loader: batch loaders of the fold.
        device / dist: training device and DDP context.
        seed: the run's base seed.
        checkpoint_extra: constant checkpoint entries (``init_args``, ``trainer_name``, mirroring axes, ...).
        logger: text / JSON-lines / progress.png writer (disabled off rank 0).
        progress: show a progress bar (interactive use).
        network_spec: the network's topology; when given, checkpoints store the weights under the reference's
            (nnU-Net) state-dict names so that the model folder loads in nnU-Net too.
    """

    fold_dir: Path
    config: TrainingConfig
    model: torch.nn.Module
    module: torch.nn.Module
    optimizer: torch.optim.Optimizer
    scaler: Any
    loss_fn: LossFn
    dice_stats: DiceStatsFn
    lr_at: Callable[[int], float]
    augment: AugmentFn
    prepare: PrepareFn
    train_loader: BatchLoader
    val_loader: BatchLoader | None
    device: torch.device
    seed: int
    dist: ddp.DistContext = field(default_factory=ddp.DistContext)
    checkpoint_extra: dict[str, Any] = field(default_factory=dict)
    logger: RunLogger | None = None
    progress: bool = False
    amp_dtype: torch.dtype | None = None  # autocast dtype of the network (None: float32)
    network_spec: Any = None
    budget: Any = None  # --time-budget hook: a time_budget.BudgetGuard that re-sizes ``config.epochs``


@dataclass
class _State:
    """Mutable loop state (what a checkpoint restores)."""

    epoch: int = 0
    iteration: int = 0
    epoch_losses: list[float] = field(default_factory=list)
    epoch_start: float | None = None
    epoch_wait: float = 0.0
    best_ema: float | None = None
    log: TrainingLog = field(default_factory=TrainingLog)


# ---- interruption ------------------------------------------------------------------------------------------------
class _StopFlag:
    """Set by SIGINT / SIGTERM; a second Ctrl-C interrupts immediately."""

    def __init__(self) -> None:
        self.requested = False

    def handler(self, signum: int, frame: Any) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True


@contextmanager
def _interrupt_handler(enabled: bool) -> Iterator[_StopFlag]:
    flag = _StopFlag()
    if not enabled or threading.current_thread() is not threading.main_thread():
        yield flag
        return
    old = {s: signal.signal(s, flag.handler) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield flag
    finally:
        for s, h in old.items():
            signal.signal(s, h)


# ---- seeding -----------------------------------------------------------------------------------------------------
def iteration_seed(seed: int, rank: int, stream: int, epoch: int, iteration: int) -> int:
    """Seed of torch's generator for one iteration (a pure function of the counters)."""
    return int(np.random.SeedSequence([seed, rank, stream, epoch, iteration]).generate_state(1, np.uint64)[0]
               % (2**63 - 1))


def _seeded(run: Run, stream: int, epoch: int, iteration: int) -> torch.Generator:
    """Reseed torch's global generator for this iteration and return a device generator with the same seed."""
    seed = iteration_seed(run.seed, run.dist.rank, stream, epoch, iteration)
    torch.manual_seed(seed)
    generator = torch.Generator(device=run.device)
    generator.manual_seed(seed)
    return generator


# ---- one step ----------------------------------------------------------------------------------------------------
def _to_device(batch: Batch, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    data = batch.data if isinstance(batch.data, torch.Tensor) else torch.from_numpy(batch.data)
    seg = batch.seg if isinstance(batch.seg, torch.Tensor) else torch.from_numpy(batch.seg)
    return data.to(device, non_blocking=True), seg.to(device, non_blocking=True)


def _autocast(run: Run) -> Any:
    if run.amp_dtype is None:
        return nullcontext()
    return torch.autocast(run.device.type, dtype=run.amp_dtype)


def train_step(run: Run, inputs: torch.Tensor, targets: Any) -> torch.Tensor:
    """Forward, loss, backward, gradient clipping at ``grad_clip`` and the optimiser step; returns the loss."""
    run.optimizer.zero_grad(set_to_none=True)
    with _autocast(run):
        outputs = run.model(inputs)
        loss = run.loss_fn(outputs, targets)
    if run.scaler is not None:
        run.scaler.scale(loss).backward()
        run.scaler.unscale_(run.optimizer)
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), run.config.recipe.grad_clip)
        run.scaler.step(run.optimizer)
        run.scaler.update()
    else:
        loss.backward()
        torch.nn.utils.clip_grad_norm_(run.model.parameters(), run.config.recipe.grad_clip)
        run.optimizer.step()
    return loss.detach()


def _first(x: Any) -> Any:
    return x[0] if isinstance(x, list | tuple) else x


def validate(run: Run, epoch: int) -> tuple[float, list[float]]:
    """Validation loss and pseudo-Dice per class over ``val_iterations`` patch batches (summed TP/FP/FN)."""
    if run.val_loader is None or run.config.recipe.val_iterations == 0:
        return float("nan"), []
    run.model.eval()
    losses: list[torch.Tensor] = []
    totals: list[torch.Tensor] = []  # summed (tp, fp, fn)
    with torch.no_grad():
        for it, batch in enumerate(run.val_loader.batches(epoch, 0, run.config.recipe.val_iterations)):
            _seeded(run, VAL_STREAM, epoch, it)
            data, seg = _to_device(batch, run.device)
            inputs, targets = run.prepare(data, seg)
            with _autocast(run):
                outputs = run.model(inputs)
                losses.append(run.loss_fn(outputs, targets).detach().float())
            t, p, n = run.dice_stats(_first(outputs), _first(targets))
            totals = [t, p, n] if not totals else [totals[0] + t, totals[1] + p, totals[2] + n]
    stats = torch.stack(totals).double()
    stats = ddp.all_reduce_sum(stats, run.dist)
    tp_, fp_, fn_ = stats.cpu().numpy()
    with np.errstate(invalid="ignore", divide="ignore"):
        dice = (2 * tp_) / (2 * tp_ + fp_ + fn_)
    val_loss = ddp.mean_over_ranks(float(torch.stack(losses).mean()), run.dist, run.device)
    return val_loss, [float(d) for d in dice]


# ---- checkpoints -------------------------------------------------------------------------------------------------
def portable_weights(state: dict[str, torch.Tensor], spec: Any) -> dict[str, torch.Tensor]:
    """``state`` under the reference's (nnU-Net) names when ``spec`` has a reference equivalent, else as is."""
    if spec is None:
        return state
    try:
        return to_reference_state_dict(state, spec)
    except CheckpointError as exc:
        log.warning("Checkpoint weights keep autounet names (the folder will not load in nnU-Net): %s", exc)
        return state


def _checkpoint_content(run: Run, state: _State, *, epoch: int, iteration: int) -> ckpt.CheckpointRecord:
    return ckpt.CheckpointRecord.model_validate({
        "network_weights": portable_weights(ckpt.unwrap_model(run.module).state_dict(), run.network_spec),
        "optimizer_state": run.optimizer.state_dict(),
        "grad_scaler_state": run.scaler.state_dict() if run.scaler is not None else None,
        "logging": state.log.state_dict(),
        "best_ema": state.best_ema,
        "current_epoch": epoch,
        "iteration": iteration,
        "epoch_train_losses": list(state.epoch_losses) if iteration else [],
        "epoch_start": state.epoch_start if iteration else None,
        "epoch_wait": state.epoch_wait if iteration else 0.0,
        "seed": run.seed,
        "rng_state": ckpt.rng_state(),
        "training_config": run.config,
        **run.checkpoint_extra,
    })


def _save(run: Run, state: _State, name: str, *, epoch: int, iteration: int = 0) -> None:
    if run.dist.is_main:
        ckpt.save_checkpoint(run.fold_dir / name, _checkpoint_content(run, state, epoch=epoch, iteration=iteration))


def restore(run: Run, content: ckpt.CheckpointRecord) -> _State:
    """Load a checkpoint's weights, optimiser, scaler, log, EMA, counters and RNG states into ``run``."""
    if content.current_epoch is None or content.optimizer_state is None:
        raise CheckpointError("The checkpoint holds no training state (current_epoch, optimizer_state): it is an "
                              "inference-only checkpoint and cannot be resumed.")
    ckpt.unwrap_model(run.module).load_state_dict(convert_reference_state_dict(content.network_weights))
    run.optimizer.load_state_dict(content.optimizer_state.as_dict())
    if run.scaler is not None and content.grad_scaler_state is not None:
        run.scaler.load_state_dict(content.grad_scaler_state)
    if content.rng_state is not None:
        ckpt.set_rng_state(content.rng_state)
    return _State(epoch=content.current_epoch, iteration=content.iteration,
                  epoch_losses=list(content.epoch_train_losses),
                  epoch_start=content.epoch_start, epoch_wait=content.epoch_wait,
                  best_ema=content.best_ema,
                  log=TrainingLog.from_state_dict(content.logging.as_dict() if content.logging is not None else {}))


# ---- the loop ----------------------------------------------------------------------------------------------------
def _set_lr(run: Run, lr: float) -> None:
    for group in run.optimizer.param_groups:
        group["lr"] = lr


def _progress_bar(run: Run, epoch: int, start: int) -> Any:
    if not (run.progress and run.dist.is_main):
        return None
    from tqdm import tqdm

    return tqdm(total=run.config.recipe.iterations_per_epoch, initial=start, desc=f"epoch {epoch}", leave=False,
                dynamic_ncols=True)


#: seconds between progress lines within an epoch when there is no bar (output to a file)
PROGRESS_INTERVAL = 30.0


def _ticker(run: Run, epoch: int, start: int) -> Ticker | None:
    """Log lines (iteration, loss, s/iteration, ETA) every ``PROGRESS_INTERVAL`` s when there is no bar."""
    if run.progress or not run.dist.is_main:
        return None
    return Ticker(run.config.recipe.iterations_per_epoch, what=f"epoch {epoch}/{run.config.recipe.epochs}", logger=log,
                  interval=PROGRESS_INTERVAL, start=start)


def _train_epoch(run: Run, state: _State, stop: _StopFlag) -> bool:
    """Run the remaining training iterations of ``state.epoch``; False if interrupted (state saved)."""
    cfg, epoch = run.config.recipe, state.epoch
    run.model.train()
    bar = _progress_bar(run, epoch, state.iteration)
    ticker = _ticker(run, epoch, state.iteration)
    pending: list[torch.Tensor] = []
    batches = run.train_loader.batches(epoch, state.iteration, cfg.iterations_per_epoch)
    try:
        for it in range(state.iteration, cfg.iterations_per_epoch):
            t0 = time.perf_counter()
            batch = next(batches)
            state.epoch_wait += time.perf_counter() - t0
            generator = _seeded(run, TRAIN_STREAM, epoch, it)
            data, seg = _to_device(batch, run.device)
            inputs, targets = run.augment(data, seg, generator)
            pending.append(train_step(run, inputs, targets))
            state.iteration = it + 1
            if bar is not None:
                bar.update(1)
            if ticker is not None:
                ticker.update(detail=lambda: f"loss {float(pending[-1]):.4f}",
                              extra_items=(cfg.epochs - epoch - 1) * cfg.iterations_per_epoch)
            if ddp.any_rank(stop.requested, run.dist, run.device) and state.iteration < cfg.iterations_per_epoch:
                state.epoch_losses.extend(float(x) for x in pending)
                return False
    finally:
        batches.close()
        if bar is not None:
            bar.close()
    state.epoch_losses.extend(float(x) for x in pending)
    return True


def _end_epoch(run: Run, state: _State, *, val_loss: float, dice: list[float], lr: float) -> None:
    cfg = run.config.recipe
    train_loss = ddp.mean_over_ranks(float(np.mean(state.epoch_losses)), run.dist, run.device)
    end = time.time()
    duration = max(end - (state.epoch_start or end), 1e-9)
    ema = state.log.log_epoch(train_loss=train_loss, val_loss=val_loss, dice_per_class=dice, lr=lr,
                              start=float(state.epoch_start or end), end=end,
                              data_wait_share=min(1.0, state.epoch_wait / duration))
    best = not math.isnan(ema) and (state.best_ema is None or ema > state.best_ema)
    if best:
        state.best_ema = ema
    if run.logger is not None:
        run.logger.epoch(state.log, state.epoch, total_epochs=cfg.epochs, best=best)
    next_epoch = state.epoch + 1
    state.epoch, state.iteration, state.epoch_losses = next_epoch, 0, []
    state.epoch_start, state.epoch_wait = None, 0.0
    if best:
        _save(run, state, ckpt.BEST, epoch=next_epoch)
    every = run.config.runtime.checkpoint_every
    if every and next_epoch % every == 0 and next_epoch < cfg.epochs:
        _save(run, state, ckpt.LATEST, epoch=next_epoch)


def fit(run: Run, *, resume_from: ckpt.CheckpointRecord | None = None, handle_interrupts: bool = True) -> Path:
    """Train ``run`` to ``config.epochs``; writes checkpoints and logs into ``run.fold_dir`` (rank 0).

    ``resume_from`` is a loaded checkpoint to continue from. Ctrl-C / SIGTERM save ``checkpoint_latest.pth`` at
    the next iteration boundary and raise :class:`TrainingInterrupted`.
    """
    cfg = run.config.recipe
    state = restore(run, resume_from) if resume_from is not None else _State(log=TrainingLog(ema_decay=cfg.ema_decay))
    if state.epoch >= cfg.epochs:
        log.info("Nothing to train: the run already finished %d epochs.", cfg.epochs)
        return run.fold_dir
    with _interrupt_handler(handle_interrupts) as stop:
        while True:
            if run.budget is not None:  # --time-budget hook: epochs re-derived from the time left
                epochs = ddp.broadcast_int(run.budget.adjust(state.epoch, run.config.recipe.epochs), run.dist,
                                           run.device)
                if epochs != run.config.recipe.epochs:
                    run.config = run.config.replace(epochs=max(epochs, 1))
            if state.epoch >= run.config.recipe.epochs:
                break
            cfg = run.config.recipe
            lr = run.lr_at(state.epoch)
            _set_lr(run, lr)
            if state.epoch_start is None:
                state.epoch_start = time.time()
            if not _train_epoch(run, state, stop):
                _interrupted(run, state)
            val_loss, dice = validate(run, state.epoch)
            _end_epoch(run, state, val_loss=val_loss, dice=dice, lr=lr)
            if ddp.any_rank(stop.requested, run.dist, run.device) and state.epoch < run.config.recipe.epochs:
                _interrupted(run, state)
    cfg = run.config.recipe
    _save(run, state, ckpt.FINAL, epoch=cfg.epochs)
    if run.dist.is_main:
        (run.fold_dir / ckpt.LATEST).unlink(missing_ok=True)
    ddp.barrier(run.dist)
    if run.logger is not None:
        run.logger.text(f"Training finished: {cfg.epochs} epochs; best EMA pseudo-Dice {state.best_ema}.")
    return run.fold_dir


def _interrupted(run: Run, state: _State) -> None:
    _save(run, state, ckpt.LATEST, epoch=state.epoch, iteration=state.iteration)
    ddp.barrier(run.dist)
    message = (f"Interrupted at epoch {state.epoch}, iteration {state.iteration}: saved "
               f"{run.fold_dir / ckpt.LATEST}. Continue with --resume.")
    if run.logger is not None:
        run.logger.text(message)
    raise TrainingInterrupted(message)
