"""Loading a trained model folder: plans, dataset spec, the configuration and one network per fold.

A model folder is ``<Trainer>__<Plans>__<Config>/`` with ``plans.json`` and ``dataset.json`` beside
``fold_<k>/checkpoint_{final,best}.pth`` (the reference's layout). Folders trained by the reference
(nnU-Net v2) load too: their plans are imported and their weights renamed to autounet's network. Folds are
auto-detected when not given (``fold_all`` excluded, as the reference does); a requested fold without the
checkpoint is a ``CheckpointError`` naming the missing file and the folds that do have it.

torch is imported only to load checkpoints: an exported ``.onnx`` model fills the same :class:`LoadedModel`
without it.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from autounet._log import get_logger
from autounet.errors import CheckpointError, UsageError
from autounet.labels import LabelSpec
from autounet.planning.store import read_plans_file
from autounet.schemas.dataset import DatasetSpec, load_dataset_spec
from autounet.schemas.plans import ConfigurationPlan, Plans
from autounet.workspace import (
    CHECKPOINT_BEST,
    CHECKPOINT_FINAL,
    CHECKPOINT_LATEST,
    DATASET_JSON,
    FOLD_DIR_PREFIX,
    PLANS_JSON,
    fold_dir_name,
)

if TYPE_CHECKING:
    import torch
    from torch import nn

    from autounet.training.checkpoint import CheckpointRecord

log = get_logger(__name__)

CHECKPOINTS = {"final": CHECKPOINT_FINAL, "best": CHECKPOINT_BEST, "latest": CHECKPOINT_LATEST}


def checkpoint_file_name(checkpoint: str) -> str:
    """``final`` / ``best`` / ``latest`` (or a file name such as ``checkpoint_best.pth``) to a file name."""
    if checkpoint in CHECKPOINTS:
        return CHECKPOINTS[checkpoint]
    if checkpoint in CHECKPOINTS.values():
        return checkpoint
    msg = f"Unknown checkpoint {checkpoint!r}. Choose one of {', '.join(CHECKPOINTS)}."
    raise UsageError(msg)


def detect_folds(model_dir: Path, checkpoint_name: str) -> list[str]:
    """The ``fold_<k>`` folders holding ``checkpoint_name`` (``fold_all`` excluded), in numeric order."""
    found = []
    for d in sorted(model_dir.glob(f"{FOLD_DIR_PREFIX}*")):
        fold = d.name[len(FOLD_DIR_PREFIX):]
        if fold != "all" and (d / checkpoint_name).is_file():
            found.append(fold)
    return sorted(found, key=lambda f: (not f.isdigit(), int(f) if f.isdigit() else 0, f))


def resolve_device(device: str | torch.device) -> torch.device:
    """``auto`` → CUDA when available, else CPU; otherwise any torch device string (``cpu``, ``cuda:1``, ``mps``)."""
    import torch

    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        dev = torch.device(device)
    except RuntimeError as exc:
        msg = f"Unknown device {device!r}: use auto, cpu, cuda, cuda:N or mps."
        raise UsageError(msg) from exc
    if dev.type == "cuda" and not torch.cuda.is_available():
        msg = f"Device {device!r} requested but CUDA is not available here; use --device cpu."
        raise UsageError(msg)
    return dev


@dataclass
class LoadedModel:
    """A trained configuration ready to predict: settings plus one network per fold (torch modules, or the
    callables of a NumPy backend: :mod:`autounet.inference.onnx_runtime`)."""

    model_dir: Path
    plans: Plans
    configuration: ConfigurationPlan
    dataset: DatasetSpec
    labels: LabelSpec
    trainer: str
    folds: tuple[str, ...]
    checkpoint: str
    mirror_axes: tuple[int, ...]
    networks: list[Any]

    @property
    def is_cascade(self) -> bool:
        return self.configuration.previous_stage is not None

    @property
    def in_channels(self) -> int:
        """Image channels plus, for cascades, one channel per foreground label."""
        extra = len(self.labels.foreground_labels) if self.is_cascade else 0
        return self.dataset.num_channels + extra


def _folds(model_dir: Path, folds: Sequence[int | str] | int | str | None, checkpoint_name: str) -> list[str]:
    available = detect_folds(model_dir, checkpoint_name)
    if folds is None:
        if not available:
            msg = (f"No fold_* folder in {model_dir} holds {checkpoint_name}. Train a fold first or choose another "
                   "--checkpoint.")
            raise CheckpointError(msg)
        return available
    wanted = [str(f) for f in ([folds] if isinstance(folds, (int, str)) else folds)]
    for f in wanted:
        if not (model_dir / fold_dir_name(f) / checkpoint_name).is_file():
            have = ", ".join(available) or "none"
            msg = (f"Fold {f} has no {checkpoint_name} in {model_dir / fold_dir_name(f)} "
                   f"(folds with it: {have}).")
            raise CheckpointError(msg)
    return wanted


def _configuration_name(content: CheckpointRecord, model_dir: Path) -> str:
    if content.configuration:
        return content.configuration
    parts = model_dir.name.split("__")
    if len(parts) == 3:
        return parts[2]
    msg = f"Cannot tell the configuration of {model_dir}: the checkpoint has no init_args.configuration."
    raise CheckpointError(msg)


def _weights(content: CheckpointRecord) -> dict[str, torch.Tensor]:
    """The weights under autounet's names (nnU-Net's are converted; ours stay as they are)."""
    from autounet import networks

    return networks.convert_reference_state_dict(content.network_weights)


def _build_network(model: LoadedModel, weights: dict[str, torch.Tensor], path: Path, *,
                   device: torch.device) -> nn.Module:
    from autounet import networks

    net = networks.build(model.configuration.network, in_channels=model.in_channels,
                         num_outputs=model.labels.num_outputs, deep_supervision=False,
                         channels_last=device.type == "cpu")
    try:
        net.load_state_dict(weights)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        msg = f"Weights in {path} do not fit the network the plans describe: {first}"
        raise CheckpointError(msg) from exc
    return net.to(device).eval()


def load_model(model_dir: str | os.PathLike[str], *, folds: Sequence[int | str] | int | str | None = None,
               checkpoint: str = "final", device: torch.device) -> LoadedModel:
    """Read a model folder and build one network per fold on ``device`` (eval mode, deep supervision off)."""
    from autounet.training.checkpoint import load_checkpoint

    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        msg = f"Model folder not found: {model_dir}"
        raise UsageError(msg)
    name = checkpoint_file_name(checkpoint)
    fold_list = _folds(model_dir, folds, name)
    plans = read_plans_file(model_dir / PLANS_JSON)  # ours, or a reference model folder's
    dataset = load_dataset_spec(model_dir / DATASET_JSON)
    labels = LabelSpec.from_dataset_spec(dataset)
    contents = []
    for f in fold_list:
        path = model_dir / fold_dir_name(f) / name
        contents.append((path, load_checkpoint(path)))
    first = contents[0][1]
    config = plans.configuration(_configuration_name(first, model_dir))
    mirror = first.inference_allowed_mirroring_axes  # None (or absent): no test-time mirroring
    if mirror is None:
        log.info("%s allows no test-time mirroring (inference_allowed_mirroring_axes is None).", model_dir.name)
    model = LoadedModel(model_dir=model_dir, plans=plans, configuration=config, dataset=dataset, labels=labels,
                        trainer=first.trainer_name or model_dir.name.split("__")[0],
                        folds=tuple(fold_list), checkpoint=name,
                        mirror_axes=mirror if mirror is not None else (),
                        networks=[])
    model.networks = [_build_network(model, _weights(content), path, device=device)
                      for path, content in contents]
    log.info("Loaded %s (%s, folds %s, %s) on %s", model_dir.name, config.name, ", ".join(fold_list), name, device)
    return model
