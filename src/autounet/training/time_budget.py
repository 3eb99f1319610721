"""Training sized by wall-clock time: ``--time-budget 40m`` on ``train`` and ``run``.

The schedule (epochs × iterations, the poly decay horizon, validation batches per epoch) is derived from iteration
times measured on this machine, for this dataset and configuration, so that training plus the final validation end
within the budget on any device:

1. :func:`parse_duration` reads ``40m``, ``8h``, ``1h30m``, ``90s``.
2. :func:`measure` times a few training and validation iterations of the assembled run (the weights, optimiser
   state and RNG are restored afterwards, so the probe leaves no trace in the run).
3. :func:`validation_seconds` estimates the final sliding-window validation of the fold (windows × mirrorings ×
   the measured forward time per patch); it is reserved out of the budget.
4. :func:`derive_schedule` turns the remaining seconds into epochs × iterations (about 50 epochs when the budget
   allows fewer than 250 × 50 iterations, the reference's 250 iterations per epoch beyond that) and validation
   batches (one fifth of the training batches, as the reference's 50 per 250).
5. :class:`BudgetGuard` is checked at every epoch start: when the measured epochs run slower (or faster) than
   planned — the machine is shared — the number of epochs is re-derived from the time left, so the poly schedule
   still decays to zero at the end and training stops within the budget.

``run`` divides its budget over its trainings with :func:`split_budget` (weighted by each configuration's measured
cost class: a 3D fold gets more than a 2D one) and says how. ``--budget short`` is :data:`SHORT_BUDGET_SECONDS`
per training, with the CPU recipe of :func:`cpu_recipe`.
"""

from __future__ import annotations

import copy
import math
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from autounet._log import get_logger
from autounet.errors import ConfigError

log = get_logger(__name__)
Clock = Callable[[], float]

#: ``--budget short``: the time budget of one training (fold), including its final validation.
SHORT_BUDGET_SECONDS = 10 * 60.0
#: epochs aimed at when the budget is too small for the reference's 250 iterations per epoch
TARGET_EPOCHS = 50
MAX_ITERATIONS_PER_EPOCH = 250
#: fewer epochs rather than shorter ones below this (each epoch pays a validation batch and checkpoint writes)
MIN_ITERATIONS_PER_EPOCH = 10
#: ... but not fewer epochs than this while the budget holds that many iterations (finer use of the time)
MIN_EPOCHS = 5
#: validation batches per training batch (the reference: 50 per 250)
VAL_RATIO = 0.2
MAX_VAL_ITERATIONS = 50
#: per-epoch cost outside the iterations (checkpoint, log, progress.png), seconds; measured epochs replace it
EPOCH_OVERHEAD_SECONDS = 2.0
#: share of the budget kept free for what cannot be measured up front (start-up, the machine's load changing)
SAFETY = 0.05

_UNITS = {"s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd])")


def parse_duration(text: str) -> float:
    """Seconds of a duration such as ``40m``, ``8h``, ``1h30m``, ``90s`` or ``2.5h`` (a unit is required)."""
    s = str(text).strip().lower().replace(" ", "")
    parts = _PART.findall(s)
    if not s or "".join(n + u for n, u in parts) != s:
        raise ConfigError(f"Invalid duration {text!r}: use a number with a unit s, m, h or d, e.g. 40m, 8h, 1h30m.")
    seconds = sum(float(n) * _UNITS[u] for n, u in parts)
    if seconds <= 0:
        raise ConfigError(f"Invalid duration {text!r}: it must be longer than 0 s.")
    return seconds


def format_duration(seconds: float) -> str:
    """``2h05m``, ``40m00s``, ``12.3s``."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, sec = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{sec:02d}s"


def cpu_recipe(spatial_dims: int) -> dict[str, Any]:
    """TrainingConfig fields for a CPU: batch 8 (2D) or 2 (3D) instead of the plans' GPU-sized batch.

    On a CPU an iteration costs in proportion to the batch, so a smaller batch buys more optimiser steps in the
    same time; at this budget scale, more steps learn more than larger batches. The default memory format
    (contiguous) is kept: with bf16 mixed precision (on by default where the CPU has native bf16) it is the fastest
    (Hippocampus on 2 idle cores, s per iteration: 3D batch 2: 1.07 bf16 / 1.28 bf16 channels-last / 1.75 float32
    / 2.00 float32 channels-last; 2D batch 8: 0.123 / 0.163 / 0.162 / 0.183; ``benchmarks/results/time_budget.md``).
    """
    if spatial_dims not in (2, 3):
        raise ConfigError(f"spatial_dims must be 2 or 3, got {spatial_dims!r}.")
    return {"batch_size": 8 if spatial_dims == 2 else 2}


# ---- measuring ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Measurement:
    """Seconds per training iteration and per validation iteration, and per forward pass of one patch."""

    train_seconds: float
    val_seconds: float
    forward_seconds: float


def _sync(device: Any) -> None:
    import torch

    if getattr(device, "type", "cpu") == "cuda":
        torch.cuda.synchronize(device)


def measure(run: Any, *, train_iterations: int = 3, val_iterations: int = 2, warmup: int = 1,
            clock: Clock = time.perf_counter) -> Measurement:
    """Time training and validation iterations of an assembled :class:`~autounet.training.loop.Run`.

    Batches come from a probe epoch outside the schedule; the network weights, the optimiser, the grad scaler and
    the RNG states are restored afterwards. The first ``warmup`` iterations (allocation, cuDNN autotuning) are not
    counted.
    """
    import torch

    from autounet.training import checkpoint as ckpt
    from autounet.training.loop import _first, _to_device, train_step

    probe_epoch = 10**6
    module = ckpt.unwrap_model(run.module)
    saved = (copy.deepcopy(module.state_dict()), copy.deepcopy(run.optimizer.state_dict()),
             copy.deepcopy(run.scaler.state_dict()) if run.scaler is not None else None, ckpt.rng_state())
    try:
        run.model.train()
        batches = run.train_loader.batches(probe_epoch, 0, warmup + train_iterations)
        train_s = _timed(lambda: _train_probe(run, batches, train_step), warmup, train_iterations, run.device, clock)
        batches.close()
        val_s = train_s / 3.0
        if run.val_loader is not None and val_iterations > 0:
            run.model.eval()
            vb = run.val_loader.batches(probe_epoch, 0, warmup + val_iterations)

            def val_step() -> None:
                data, seg = _to_device(next(vb), run.device)
                inputs, targets = run.prepare(data, seg)
                with torch.no_grad():
                    outputs = run.model(inputs)
                    run.loss_fn(outputs, targets)
                    run.dice_stats(_first(outputs), _first(targets))

            val_s = _timed(val_step, warmup, val_iterations, run.device, clock)
            vb.close()
    finally:
        module.load_state_dict(saved[0])
        run.optimizer.load_state_dict(saved[1])
        if saved[2] is not None:
            run.scaler.load_state_dict(saved[2])
        ckpt.set_rng_state(saved[3])
        run.model.train()
    batch = max(1, int(getattr(run.train_loader, "batch_size", 1) or 1))
    return Measurement(train_seconds=train_s, val_seconds=val_s, forward_seconds=val_s / batch)


def _train_probe(run: Any, batches: Any, step: Callable[..., Any]) -> None:
    import torch

    from autounet.training.loop import _to_device

    data, seg = _to_device(next(batches), run.device)
    inputs, targets = run.augment(data, seg, torch.Generator(device=run.device))
    step(run, inputs, targets)


def _timed(step: Callable[[], None], warmup: int, n: int, device: Any, clock: Clock) -> float:
    """Mean seconds of ``n`` calls of ``step`` after ``warmup`` uncounted ones."""
    for _ in range(warmup):
        step()
    _sync(device)
    start = clock()
    for _ in range(n):
        step()
    _sync(device)
    return max((clock() - start) / max(n, 1), 1e-6)


# ---- the final validation ----------------------------------------------------------------------------------------
def windows_per_case(shape: Sequence[int], patch_size: Sequence[int], *, step: float = 0.5) -> int:
    """Sliding-window tiles of one case (a 2D patch on a 3D shape tiles each slice of the first axis)."""
    shape = [int(s) for s in shape]
    patch = [int(p) for p in patch_size]
    slices = 1
    if len(patch) < len(shape):
        slices = math.prod(shape[: len(shape) - len(patch)])
        shape = shape[len(shape) - len(patch):]
    tiles = 1
    for s, p in zip(shape, patch, strict=True):
        tiles *= 1 if s <= p else math.ceil((s - p) / max(1, int(p * step))) + 1
    return slices * tiles


def validation_seconds(shapes: Sequence[Sequence[int]], patch_size: Sequence[int], *, forward_seconds: float,
                       mirror_axes: int, per_case_overhead: float = 0.5) -> float:
    """Estimated seconds of the final validation: tiles × 2**mirror_axes forward passes per case, plus I/O."""
    passes = sum(windows_per_case(s, patch_size) for s in shapes) * (2 ** int(mirror_axes))
    return passes * forward_seconds + per_case_overhead * len(shapes)


# ---- the schedule ------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Schedule:
    """A training schedule derived from a time budget, and what it was derived from."""

    budget_seconds: float
    train_seconds: float
    reserve_seconds: float
    available_seconds: float
    epochs: int
    iterations_per_epoch: int
    val_iterations: int
    measurement: Measurement

    @property
    def epoch_seconds(self) -> float:
        """Planned seconds of one epoch (training and validation iterations plus the epoch overhead)."""
        m = self.measurement
        return self.iterations_per_epoch * m.train_seconds + self.val_iterations * m.val_seconds \
            + EPOCH_OVERHEAD_SECONDS

    def overrides(self) -> dict[str, int]:
        """The TrainingConfig fields this schedule sets."""
        return {"epochs": self.epochs, "iterations_per_epoch": self.iterations_per_epoch,
                "val_iterations": self.val_iterations}

    def explain(self) -> str:
        """One line: the budget, the measurement and the schedule."""
        m = self.measurement
        return (f"time budget {format_duration(self.budget_seconds)}: measured {m.train_seconds:.2f} s per training "
                f"iteration, {m.val_seconds:.2f} s per validation iteration; {format_duration(self.reserve_seconds)}"
                f" kept for the final validation and start-up -> {self.epochs} epochs x {self.iterations_per_epoch} "
                f"iterations (+{self.val_iterations} validation) in about {format_duration(self.train_seconds)}")


def derive_schedule(budget_seconds: float, measurement: Measurement, *, reserve_seconds: float = 0.0,
                    with_validation: bool = True) -> Schedule:
    """Epochs × iterations that fit ``budget_seconds - reserve_seconds`` at the measured iteration times.

    About :data:`TARGET_EPOCHS` epochs while an epoch would have fewer than 250 iterations (the reference's 250
    iterations per epoch beyond), but no fewer than :data:`MIN_ITERATIONS_PER_EPOCH` iterations per epoch (fewer
    epochs instead: the per-epoch validation and checkpoints would eat a short budget) unless the whole budget
    holds less than that. Validation batches are :data:`VAL_RATIO` of the
    training batches (at least 1, at most 50) unless ``with_validation`` is false.
    """
    if budget_seconds <= 0:
        raise ConfigError(f"The time budget must be > 0 s, got {budget_seconds}.")
    available = budget_seconds * (1 - SAFETY) - reserve_seconds
    m = measurement
    minimum = m.train_seconds + (m.val_seconds if with_validation else 0.0) + EPOCH_OVERHEAD_SECONDS
    if available < minimum:
        raise ConfigError(
            f"A time budget of {format_duration(budget_seconds)} is too short here: one training iteration takes "
            f"{m.train_seconds:.2f} s and the final validation needs about {format_duration(reserve_seconds)}; "
            f"give at least {format_duration((minimum + reserve_seconds) / (1 - SAFETY))}.")

    def val_for(ipe: int) -> int:
        return min(MAX_VAL_ITERATIONS, max(1, round(ipe * VAL_RATIO))) if with_validation else 0

    per_iteration = m.train_seconds + (VAL_RATIO * m.val_seconds if with_validation else 0.0)
    total = available / per_iteration
    ipe = int(min(MAX_ITERATIONS_PER_EPOCH, max(MIN_ITERATIONS_PER_EPOCH, round(total / TARGET_EPOCHS))))
    if total < ipe * MIN_EPOCHS:  # a very short budget: at least MIN_EPOCHS shorter epochs
        ipe = max(1, int(total // MIN_EPOCHS))
    epoch_s = ipe * m.train_seconds + val_for(ipe) * m.val_seconds + EPOCH_OVERHEAD_SECONDS
    epochs = int(available // epoch_s)
    while epochs < 1 and ipe > 1:  # an epoch longer than the budget: shorter epochs
        ipe = max(1, ipe // 2)
        epoch_s = ipe * m.train_seconds + val_for(ipe) * m.val_seconds + EPOCH_OVERHEAD_SECONDS
        epochs = int(available // epoch_s)
    epochs = max(1, epochs)
    return Schedule(budget_seconds=budget_seconds, train_seconds=epochs * epoch_s, reserve_seconds=reserve_seconds,
                    available_seconds=available, epochs=epochs, iterations_per_epoch=ipe, val_iterations=val_for(ipe),
                    measurement=m)


class BudgetGuard:
    """Keeps training within its time: at each epoch start, re-derives the number of epochs from the time left.

    ``adjust(epoch)`` returns the epochs the run should have now (never fewer than ``epoch``: a finished epoch
    stays, and never more than :data:`MAX_EPOCHS_FACTOR` × the planned ones), from the mean measured epoch time so
    far (the plan's estimate before the first epoch ends), so that training ends by the time available to it.
    It is also consulted after the last planned epoch, so a run that went faster than measured may add epochs.
    """

    MAX_EPOCHS_FACTOR = 1.5

    def __init__(self, schedule: Schedule, *, clock: Clock = time.monotonic, start: float | None = None) -> None:
        self.schedule = schedule
        self.clock = clock
        self.start = clock() if start is None else start
        self.deadline = self.start + schedule.available_seconds
        self._first_epoch: int | None = None
        self._first_epoch_start: float | None = None

    def adjust(self, epoch: int, planned_epochs: int) -> int:
        """The number of epochs to train, given that ``epoch`` is about to start (``planned_epochs`` so far)."""
        now = self.clock()
        if self._first_epoch is None:
            self._first_epoch, self._first_epoch_start = epoch, now
            return planned_epochs
        done = epoch - self._first_epoch
        if done < 1:
            return planned_epochs
        per_epoch = (now - float(self._first_epoch_start or now)) / done
        left = self.deadline - now
        fit = int(left // per_epoch) if per_epoch > 0 else planned_epochs - epoch
        cap = math.ceil(self.schedule.epochs * self.MAX_EPOCHS_FACTOR)
        epochs = min(cap, max(epoch, epoch + fit))
        if epochs != planned_epochs:
            log.info("Time budget: epochs take %.1f s (planned %.1f s); %s left -> %d epochs instead of %d.",
                     per_epoch, self.schedule.epoch_seconds, format_duration(max(left, 0.0)), epochs,
                     planned_epochs)
        return epochs


# ---- dividing a budget -------------------------------------------------------------------------------------------
def split_budget(total_seconds: float, jobs: Sequence[tuple[str, Any]], *, weights: dict[str, float] | None = None,
                 parallel: int = 1) -> dict[tuple[str, Any], float]:
    """Seconds for each ``(configuration, fold)`` job of a ``run`` with ``total_seconds`` in all.

    Jobs run ``parallel`` at a time (one per device), so the total is ``total_seconds × parallel`` device-seconds.
    ``weights`` per configuration (default 1; ``run`` gives 3D configurations 2) set each job's share.
    """
    if not jobs:
        return {}
    weights = weights or {}
    w = [float(weights.get(c, 1.0)) for c, _ in jobs]
    device_seconds = total_seconds * max(1, parallel)
    return {job: device_seconds * wi / sum(w) for job, wi in zip(jobs, w, strict=True)}


def describe_split(shares: dict[tuple[str, Any], float], total_seconds: float) -> str:
    """One line for the user: how a ``run``'s budget was divided."""
    per_config: dict[str, list[float]] = {}
    for (configuration, _fold), seconds in shares.items():
        per_config.setdefault(configuration, []).append(seconds)
    parts = [f"{c}: {len(v)} fold(s) x {format_duration(v[0])}" for c, v in per_config.items()]
    return f"time budget {format_duration(total_seconds)} divided over {len(shares)} training(s) " \
           f"(training and final validation each): {'; '.join(parts)}"


# ---- applying it to a run ----------------------------------------------------------------------------------------


def poly_schedule(run: Any) -> Callable[[int], float]:
    """``lr_at(epoch)`` of the recipe's registered schedule on the run's current number of epochs (the decay
    horizon follows the guard)."""
    from autounet.training import components

    def lr_at(epoch: int) -> float:
        recipe = run.config.recipe
        return components.build_schedule(recipe)(min(epoch, recipe.epochs))

    return lr_at


def apply(run: Any, budget_seconds: float, *, patch_size: Sequence[int], final_validation: bool = True,
          started: float | None = None, clock: Clock = time.monotonic) -> Schedule:
    """Measure ``run``, set its schedule from ``budget_seconds`` and attach a :class:`BudgetGuard`.

    ``started`` is when the budget began (``clock()`` time; default now): the time already spent (loading,
    measuring) is taken off. With ``final_validation`` the fold's validation cases are predicted after training,
    and their estimated time is kept free.
    """
    started = clock() if started is None else started
    shapes = list(run.val_loader.shapes.values()) if final_validation and run.val_loader is not None else []
    mirror_axes = len(run.checkpoint_extra.get("inference_allowed_mirroring_axes", ()) or ())
    m = measure(run, val_iterations=2 if run.val_loader is not None else 0)
    reserve = validation_seconds(shapes, patch_size, forward_seconds=m.forward_seconds,
                                 mirror_axes=mirror_axes) if shapes else 0.0
    spent = max(0.0, clock() - started)
    schedule = derive_schedule(budget_seconds, m, reserve_seconds=reserve + spent,
                               with_validation=run.val_loader is not None)
    run.config = run.config.replace(**schedule.overrides())
    run.lr_at = poly_schedule(run)
    run.budget = BudgetGuard(schedule, clock=clock)
    if run.logger is not None:  # logs it and appends it to the fold's text log
        run.logger.text(schedule.explain())
    else:
        log.info("%s", schedule.explain())
    return schedule



def recipe_for(device: str, spatial_dims: int) -> dict[str, Any]:
    """:func:`cpu_recipe` when ``device`` (``auto`` resolved) is the CPU, else nothing (the plans' batch)."""
    from autounet.training.build import resolve_device

    return cpu_recipe(spatial_dims) if resolve_device(device).type == "cpu" else {}


def resolve_config(budget: str, time_budget: str | float | None, spatial_dims: int,
                   overrides: dict[str, Any]) -> tuple[Any, float | None]:
    """The TrainingConfig and the time budget in seconds of ``train`` (CLI and API alike).

    ``time_budget`` (a duration or seconds) derives the schedule, on the CPU recipe when training on a CPU;
    ``budget="short"`` is :data:`SHORT_BUDGET_SECONDS` the same way, unless ``overrides`` fix the schedule
    (``epochs`` / ``iterations_per_epoch`` / ``val_iterations``: then the fixed short preset). Otherwise the
    named preset, no time budget.
    """
    from autounet.schemas.training import canonical_budget, training_config

    budget = canonical_budget(budget)
    seconds = (parse_duration(time_budget) if isinstance(time_budget, str) else float(time_budget)) \
        if time_budget is not None else (SHORT_BUDGET_SECONDS if budget == "short" else None)
    fixed = sorted({"epochs", "iterations_per_epoch", "val_iterations"} & set(overrides))
    if seconds is None:
        return training_config(budget, spatial_dims=spatial_dims, **overrides), None
    if fixed and time_budget is not None:
        raise ConfigError(f"A time budget derives the schedule; do not also set {', '.join(fixed)}.")
    if fixed:
        return training_config("short", spatial_dims=spatial_dims, **overrides), None
    base = {**recipe_for(str(overrides.get("device", "auto")), spatial_dims), **overrides}
    return training_config("full", spatial_dims=spatial_dims, **base), seconds


__all__ = ["SHORT_BUDGET_SECONDS", "BudgetGuard", "Measurement", "Schedule", "apply", "cpu_recipe", "derive_schedule",
           "describe_split", "format_duration", "measure", "parse_duration", "poly_schedule", "recipe_for",
           "resolve_config", "split_budget", "validation_seconds", "windows_per_case"]
