"""Checkpoints: atomic ``torch.save`` of everything a run needs to continue bit-identically or to predict.

The content is the typed :class:`~autounet.schemas.checkpoint.CheckpointRecord` (the reference's keys plus the
resume state, the training config and a schema header); :func:`save_checkpoint` writes one and
:func:`load_checkpoint` is the one reader, for autounet's checkpoints and for the reference's (nnU-Net 2.8.1).

Every checkpoint is untrusted (model folders are downloaded and exchanged): :func:`load_checkpoint` reads it with
``torch.load(..., weights_only=True)``, which never runs code from the file, and allows only the few non-tensor
types that real checkpoints of autounet and of the reference carry (:data:`ALLOWED_GLOBALS`: numpy arrays, dtypes
and scalars). A file that needs any other type is refused with a ``CheckpointError`` naming the file and the type.
"""

from __future__ import annotations

import os
import pickle
import random
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from autounet._atomic import atomic_path
from autounet.errors import CheckpointError, SchemaError
from autounet.schemas.checkpoint import SCHEMA, SCHEMA_VERSION, CheckpointRecord, RngState, checkpoint_record
from autounet.workspace import CHECKPOINT_BEST, CHECKPOINT_FINAL, CHECKPOINT_LATEST

__all__ = ["ALLOWED_GLOBALS", "BEST", "FINAL", "LATEST", "SCHEMA", "SCHEMA_VERSION", "CheckpointRecord",
           "find_resume_checkpoint", "load_checkpoint", "load_pretrained", "rng_state", "save_checkpoint",
           "set_rng_state", "strip_module_prefix", "unwrap_model"]
LATEST = CHECKPOINT_LATEST
BEST = CHECKPOINT_BEST
FINAL = CHECKPOINT_FINAL


def unwrap_model(model: torch.nn.Module) -> torch.nn.Module:
    """The plain module under DDP and ``torch.compile`` wrappers."""
    while True:
        if hasattr(model, "module") and isinstance(model, torch.nn.parallel.DistributedDataParallel):
            model = model.module
        elif hasattr(model, "_orig_mod") and isinstance(model._orig_mod, torch.nn.Module):
            model = model._orig_mod
        else:
            return model


def _numpy_globals() -> list[Any]:
    """numpy arrays, dtypes and scalars, also under their numpy 1.x pickle names (``numpy.core...``)."""
    multiarray = np._core.multiarray  # type: ignore[attr-defined]
    entries: list[Any] = [multiarray._reconstruct, multiarray.scalar, np.ndarray, np.dtype,
                          (multiarray._reconstruct, "numpy.core.multiarray._reconstruct"),
                          (multiarray.scalar, "numpy.core.multiarray.scalar")]
    # numpy 2 pickles some dtypes by their class (``numpy.dtypes.Float64DType``); only plain numeric/bool ones
    for name in ("Bool", "Int8", "Int16", "Int32", "Int64", "UInt8", "UInt16", "UInt32", "UInt64", "Float16",
                 "Float32", "Float64", "LongDouble", "Complex64", "Complex128", "Long", "ULong", "LongLong",
                 "ULongLong", "Byte", "UByte", "Short", "UShort", "Int", "UInt"):
        cls = getattr(np.dtypes, f"{name}DType", None)
        if cls is not None and cls not in entries:
            entries.append(cls)
    return entries


#: The non-tensor types a checkpoint may contain beyond torch's own weights-only set (tensors, containers,
#: ``torch.device``, numbers, strings): numpy arrays, dtypes and scalars. The reference stores numpy scalars in
#: ``logging`` and ``_best_ema``; autounet stores the numpy generator state in ``rng_state``.
ALLOWED_GLOBALS: list[Any] = _numpy_globals()
_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")
_TORCH_PREAMBLE = "Weights only load failed"


def _refused_type(path: Path, exc: Exception) -> str | None:
    """The type the weights-only loader refused in ``path`` (torch's message, else a scan), if any."""
    match = _GLOBAL.search(str(exc))
    if match:
        return match.group(1)
    try:
        allowed = {g[1] if isinstance(g, tuple) else f"{g.__module__}.{g.__qualname__}" for g in ALLOWED_GLOBALS}
        extra = [g for g in torch.serialization.get_unsafe_globals_in_checkpoint(path) if g not in allowed]
    except Exception:  # noqa: BLE001 - not a zip checkpoint, unreadable, ...: fall back to torch's reason
        extra = []
    return extra[0] if extra else None


def _reason(exc: Exception) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip() and not ln.startswith(_TORCH_PREAMBLE)]
    return lines[0] if lines else type(exc).__name__


def rng_state() -> dict[str, Any]:
    """The global torch (CPU and CUDA), numpy and Python generator states."""
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "numpy": np.random.get_state(),
                             "python": random.getstate()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: RngState | Mapping[str, Any]) -> None:
    """Restore what :func:`rng_state` returned (or a checkpoint's :class:`RngState`)."""
    if isinstance(state, RngState):
        state = state.as_dict()
    if "torch" in state:
        torch.set_rng_state(state["torch"])
    if "numpy" in state:
        np.random.set_state(state["numpy"])
    if "python" in state:
        random.setstate(state["python"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: str | os.PathLike[str], record: CheckpointRecord | Mapping[str, Any]) -> None:
    """Write a checkpoint atomically (a crash never leaves a truncated file under the final name).

    ``record`` is a :class:`CheckpointRecord` or a mapping of its fields (validated first: ``CheckpointError``).
    """
    if not isinstance(record, CheckpointRecord):
        try:
            record = checkpoint_record({"schema": SCHEMA, "schema_version": SCHEMA_VERSION, **record},
                                       where=f"Checkpoint {os.fspath(path)}")
        except SchemaError as exc:
            raise CheckpointError(str(exc)) from None
    payload = record.payload()
    try:
        with atomic_path(path) as tmp:
            torch.save(payload, tmp)
    except (OSError, RuntimeError) as exc:  # torch reports a full disk as a RuntimeError of its zip writer
        import shutil

        try:
            free = shutil.disk_usage(Path(path).parent).free
        except OSError:
            free = -1
        size = sum(v.numel() * v.element_size() for v in record.network_weights.values())
        reason = f"no space left on the device ({free} bytes free)" if 0 <= free < max(size, 1 << 20) else \
            (str(exc).splitlines()[0] if str(exc) else type(exc).__name__)
        raise CheckpointError(f"Cannot write checkpoint {path}: {reason}. Free space and resume with --resume "
                              "(the previous checkpoint is kept).") from exc


def load_checkpoint(path: str | os.PathLike[str], *,
                    map_location: str | torch.device = "cpu") -> CheckpointRecord:
    """Read a checkpoint (autounet's or the reference's) without running code from it, as a typed record.

    The file is read weights-only (:data:`ALLOWED_GLOBALS` allowed) and validated into a
    :class:`CheckpointRecord`. A missing or unreadable file, a file that needs a type outside the allow-list, one
    that is not a dict or a malformed field raises one ``CheckpointError`` line naming the file (and the refused
    type or the bad field).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"Checkpoint not found: {path}")
    try:
        with torch.serialization.safe_globals(ALLOWED_GLOBALS):
            content = torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as exc:
        refused = _refused_type(path, exc)
        if refused is None:  # not a type: a corrupt file or an operation the weights-only format lacks
            raise CheckpointError(f"Cannot read checkpoint {path}: {_reason(exc)}") from exc
        raise CheckpointError(f"Refusing to load checkpoint {path}: it needs the type {refused}, which a weights "
                              "checkpoint never contains (loading it could run code). Use a checkpoint from a "
                              "source you trust, or re-save only its tensors.") from exc
    except Exception as exc:  # noqa: BLE001 - torch raises many types for corrupt files
        raise CheckpointError(f"Cannot read checkpoint {path}: {_reason(exc)}") from exc
    try:
        return checkpoint_record(content, where=f"Checkpoint {path}")
    except SchemaError as exc:
        raise CheckpointError(str(exc)) from None


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

    source = convert_reference_state_dict(ckpt.network_weights)  # ours or nnU-Net's names
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
