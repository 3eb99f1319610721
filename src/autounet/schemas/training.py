"""TrainingConfig: every setting of one training run, as a typed, versioned record.

The reference changes these values by subclassing its trainer (``nnUNetTrainer_250epochs`` ...); here they are
fields. :meth:`TrainingConfig.reference` is the reference recipe (1000 epochs × 250 iterations, SGD Nesterov
momentum 0.99, lr 1e-2, weight decay 3e-5, poly schedule, gradient clipping at 12, 50 validation iterations, 33 %
forced-foreground oversampling, EMA pseudo-Dice 0.9/0.1). :meth:`TrainingConfig.short` is the CPU budget preset
(``--budget short``). The resolved config is saved beside every run (``training_config.json``) and inside every
checkpoint.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, fields
from typing import Any

from autounet.errors import ConfigError, SchemaError
from autounet.schemas._base import check_keys, read_json, save_record, unwrap, wrap

SCHEMA = "autounet/training_config"
SCHEMA_VERSION = 1
DEVICES = ("auto", "cpu", "cuda", "mps")


@dataclass(frozen=True)
class TrainingConfig:
    """Settings of one training run (all keyword-only; defaults are the reference recipe).

    Attributes:
        epochs: number of epochs (the poly schedule runs over this many).
        iterations_per_epoch: training batches per epoch.
        val_iterations: validation batches (patches) per epoch for the pseudo-Dice.
        initial_lr: learning rate of epoch 0.
        weight_decay: SGD weight decay.
        momentum: SGD momentum (Nesterov).
        poly_exponent: exponent of the poly learning-rate schedule.
        grad_clip: global L2 gradient-norm clip.
        batch_size: total batch size; ``None`` takes the plans' (split across DDP ranks).
        oversample_foreground: share of each batch forced to contain foreground (last samples of the batch).
        probabilistic_oversampling: force each sample independently with that probability instead.
        deep_supervision: train with deep-supervision outputs.
        ema_decay: weight of the old value in the EMA of the pseudo-Dice (``0.9``).
        checkpoint_every: write ``checkpoint_latest.pth`` every N epochs (``0``: only on interruption).
        device: ``auto`` (CUDA if available, else CPU), ``cpu``, ``cuda`` or ``mps``.
        amp: mixed precision (fp16 autocast and grad scaling); only used on CUDA.
        compile: ``torch.compile`` the network; only used on CUDA.
        channels_last: use the channels-last memory format for the network and inputs.
        seed: base seed; ``None`` draws one at the start (stored in the checkpoint so a resume continues it).
        deterministic: deterministic algorithms (bit-identical reruns on CPU).
        augmentation: an augmentation preset name or a JSON file.
        workers: patch-reading loader workers (threads); 0 reads in the main thread.
        prefetch: batches read ahead of the training step.
        pretrained: weights to initialise from (all matching keys except the segmentation heads).
        trainer_name: first part of the model folder name (``<Trainer>__<Plans>__<Config>``).
        threads: torch intra-op threads on CPU; ``None`` leaves torch's default.
    """

    epochs: int = 1000
    iterations_per_epoch: int = 250
    val_iterations: int = 50
    initial_lr: float = 1e-2
    weight_decay: float = 3e-5
    momentum: float = 0.99
    poly_exponent: float = 0.9
    grad_clip: float = 12.0
    batch_size: int | None = None
    oversample_foreground: float = 0.33
    probabilistic_oversampling: bool = False
    deep_supervision: bool = True
    ema_decay: float = 0.9
    checkpoint_every: int = 1
    device: str = "auto"
    amp: bool = True
    compile: bool = True
    channels_last: bool = False
    seed: int | None = None
    deterministic: bool = False
    augmentation: str = "default"
    workers: int = 2
    prefetch: int = 4
    pretrained: str | None = None
    trainer_name: str = "nnUNetTrainer"
    threads: int | None = None

    def __post_init__(self) -> None:
        positive = ("epochs", "iterations_per_epoch", "prefetch")
        for name in positive:
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"TrainingConfig.{name} must be >= 1, got {getattr(self, name)!r}.")
        for name in ("val_iterations", "checkpoint_every", "workers"):
            if int(getattr(self, name)) < 0:
                raise ConfigError(f"TrainingConfig.{name} must be >= 0, got {getattr(self, name)!r}.")
        if self.batch_size is not None and self.batch_size < 1:
            raise ConfigError(f"TrainingConfig.batch_size must be >= 1, got {self.batch_size}.")
        if not 0.0 <= self.oversample_foreground <= 1.0:
            msg = f"TrainingConfig.oversample_foreground must be in [0, 1], got {self.oversample_foreground}."
            raise ConfigError(msg)
        if not 0.0 <= self.ema_decay < 1.0:
            raise ConfigError(f"TrainingConfig.ema_decay must be in [0, 1), got {self.ema_decay}.")
        if self.initial_lr <= 0 or self.grad_clip <= 0:
            raise ConfigError("TrainingConfig.initial_lr and grad_clip must be > 0.")
        if self.device not in DEVICES:
            raise ConfigError(f"TrainingConfig.device must be one of {', '.join(DEVICES)}, got {self.device!r}.")
        if self.threads is not None and self.threads < 1:
            raise ConfigError(f"TrainingConfig.threads must be >= 1, got {self.threads}.")

    # ---- presets ----------------------------------------------------------------------------------------------
    @classmethod
    def reference(cls, **overrides: Any) -> TrainingConfig:
        """The reference recipe (nnUNetTrainer defaults), with optional field overrides."""
        return cls(**overrides)

    @classmethod
    def short(cls, spatial_dims: int = 2, **overrides: Any) -> TrainingConfig:
        """The ``--budget short`` preset: a CPU-sized schedule of the same recipe.

        The reference recipe (SGD Nesterov 0.99, lr 1e-2 with the poly schedule, Dice+CE with deep supervision,
        33 % oversampling, the full augmentation), channels-last, on a schedule sized for 2 CPU cores:

        * 2D configurations: 16 epochs × 50 iterations of batch 8, 10 validation iterations (Hippocampus ``2d``
          fold 0: 7 min, validation Dice 0.80 — ``benchmarks/results/training.md``);
        * 3D configurations: 8 epochs × 12 iterations of batch 2, 2 validation iterations (a 3D iteration costs
          about 25 times a 2D one on a CPU: Hippocampus ``3d_fullres`` about 4 s per iteration on 2 cores), so
          a fold also takes minutes; it is a smoke-level schedule for 3D, not a converged one.
        """
        if spatial_dims not in (2, 3):
            raise ConfigError(f"spatial_dims must be 2 or 3, got {spatial_dims!r}.")
        base: dict[str, Any] = ({"epochs": 16, "iterations_per_epoch": 50, "val_iterations": 10, "batch_size": 8}
                                if spatial_dims == 2 else
                                {"epochs": 8, "iterations_per_epoch": 12, "val_iterations": 2, "batch_size": 2})
        base["channels_last"] = True
        base.update(overrides)
        return cls(**base)

    @classmethod
    def preset(cls, name: str, *, spatial_dims: int = 2, **overrides: Any) -> TrainingConfig:
        """A named preset: ``reference`` (alias ``default``) or ``short`` (sized by ``spatial_dims``)."""
        if name in ("reference", "default"):
            return cls.reference(**overrides)
        if name == "short":
            return cls.short(spatial_dims, **overrides)
        raise ConfigError(f"Unknown training budget {name!r}. Available: default, reference, short.")

    def replace(self, **changes: Any) -> TrainingConfig:
        """A copy with some fields changed (unknown names raise ``ConfigError``)."""
        known = {f.name for f in fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            msg = f"Unknown TrainingConfig field(s) {', '.join(unknown)}. Known: {', '.join(sorted(known))}."
            raise ConfigError(msg)
        return dataclasses.replace(self, **changes)

    # ---- serialisation ----------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        """The on-disk record (schema header plus every field)."""
        return wrap(SCHEMA, SCHEMA_VERSION, dataclasses.asdict(self))

    @classmethod
    def from_dict(cls, data: Any, *, where: str = "training config") -> TrainingConfig:
        """Validate a record written by :meth:`to_dict`."""
        data = unwrap(data, schema=SCHEMA, version=SCHEMA_VERSION, where=where)
        data.pop("schema")
        data.pop("schema_version")
        data.pop("provenance", None)
        check_keys(data, required=(), allowed=[f.name for f in fields(cls)], where=where)
        try:
            return cls(**data)
        except (TypeError, ConfigError) as exc:
            raise SchemaError(f"{where}: {exc}") from exc


def load_training_config(path: str | os.PathLike[str]) -> TrainingConfig:
    """Read a ``training_config.json``."""
    return TrainingConfig.from_dict(read_json(path, what="Training config"), where=f"training config {os.fspath(path)}")


def save_training_config(path: str | os.PathLike[str], config: TrainingConfig) -> None:
    """Write a ``training_config.json`` atomically."""
    save_record(path, config.to_dict())
