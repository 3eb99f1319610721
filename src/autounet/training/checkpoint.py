"""Checkpoints: atomic ``torch.save`` of everything a run needs to continue bit-identically or to predict.

Keys follow the reference's checkpoint (``network_weights``, ``optimizer_state``, ``grad_scaler_state``,
``logging``, ``_best_ema``, ``current_epoch``, ``init_args``, ``trainer_name``,
``inference_allowed_mirroring_axes``) plus ``iteration`` (next training iteration of ``current_epoch``, non-zero
after an interruption inside an epoch), ``epoch_train_losses`` (the interrupted epoch's losses so far),
``data_wait``, ``seed``, ``rng_state`` (torch, numpy and Python generators), ``training_config`` and ``schema``.
"""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import torch

from autounet._atomic import atomic_path
from autounet.errors import CheckpointError

SCHEMA = "autounet/checkpoint"
SCHEMA_VERSION = 1
LATEST = "checkpoint_latest.pth"
BEST = "checkpoint_best.pth"
FINAL = "checkpoint_final.pth"


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module under DDP and ``torch.compile`` wrappers."""
    while True:
        if hasattr(model, "module") and isinstance(model, torch.nn.parallel.DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod"):
            model = model._orig_mod
        else:
            return model


def rng_state() -> dict[str, Any]:
    """The global torch (CPU and CUDA), numpy and Python generator states."""
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
                             "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    if "torch" in state:
        torch.set_rng_state(state["torch"])
    if "numpy" in state:
        np.random.set_state(state["numpy"])
    if "python" in state:
        random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | os.PathLike[str], content: dict[str, Any]) -> None:
    """Write a checkpoint atomically (a crash never leaves a truncated file under the final name)."""
    payload = {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, **content}
    with atomic_path(path) as tmp:
        torch.save(payload, tmp)


def load_checkpoint(path: str | os.PathLike[str], *, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read a checkpoint; a missing or unreadable file raises ``CheckpointError`` naming it."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Checkpoint not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=False)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for corrupt files
        raise CheckpointError(f"Cannot read checkpoint {path}: {exc}") from exc


def find_resume_checkpoint(fold_dir: Path) -> Path | None:
    """The checkpoint ``--resume`` continues from: final, else latest, else best (reference order)."""
    for name in (FINAL, LATEST, BEST):
        if (fold_dir / name).is_file():
            return fold_dir / name
    return None


def strip_module_prefix(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Remove ``module.``/``_orig_mod.`` prefixes of DDP / compiled state dicts."""
    out = {}
    for key, value in state.items():
        for prefix in ("module.", "_orig_mod."):
            while key.startswith(prefix):
                key = key[len(prefix):]
        out[key] = value
    return out


def load_pretrained(model: torch.nn.Module, path: str | os.PathLike[str]) -> list[str]:
    """Copy pretrained weights into ``model``: every key except the segmentation heads (``seg_layers``).

    Every non-head parameter of the model must exist in the file with the same shape (``CheckpointError``
    otherwise). Returns the keys copied.
    """
    ckpt = load_checkpoint(path)
    from autounet.networks.reference_compat import convert_reference_state_dict

    source = convert_reference_state_dict(ckpt.get("network_weights", ckpt))  # ours or nnU-Net's names
    target = unwrap_model(model).state_dict()
    problems = []
    for key, value in target.items():
        if ".seg_layers." in key or key.startswith("seg_layers."):
            continue
        if key not in source:
            problems.append(f"{key} missing")
        elif tuple(source[key].shape) != tuple(value.shape):
            problems.append(f"{key} has shape {tuple(source[key].shape)}, the network needs {tuple(value.shape)}")
    if problems:
        shown = "; ".join(problems[:5]) + (f"; ... ({len(problems)} in all)" if len(problems) > 5 else "")
        raise CheckpointError(f"Pretrained weights {path} do not fit this network: {shown}.")
    copied = {k: v for k, v in source.items() if k in target and ".seg_layers." not in k
              and not k.startswith("seg_layers.") and tuple(v.shape) == tuple(target[k].shape)}
    merged = dict(target)
    merged.update(copied)
    unwrap_model(model).load_state_dict(merged)
    return sorted(copied)
