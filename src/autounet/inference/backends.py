"""Inference backends: what runs the network inside the sliding window (a registry of small records).

``torch`` (default) runs the PyTorch networks on the chosen device. ``onnxruntime`` converts them to ONNX in
memory (or loads an ``.onnx`` file written by :func:`autounet.inference.onnx.export_onnx`) and runs ONNX Runtime
sessions on the CPU (or its CUDA provider); ``openvino`` (optional, ``pip install openvino``) compiles the same
ONNX graph with OpenVINO for the CPU. Tiling, mirroring, Gaussian weighting and export stay the same code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from autounet.inference.model import LoadedModel, resolve_device
from autounet.registry import Registry


@dataclass(frozen=True)
class Backend:
    """One backend.

    Attributes:
        name: the registry name (``--backend``).
        prepare: ``prepare(model, device=..., threads=...)`` swaps ``model.networks`` for the backend's callables.
        buffer_device: the torch device for tiles and accumulation buffers, from the requested device string.
        cpu_streams: concurrent network calls on the CPU (``None``: the sliding window's default). Backends with
            their own thread pool use 1.
        requirement: the Python module the backend needs (checked when it is chosen).
    """

    name: str
    prepare: Callable[..., None]
    buffer_device: Callable[[str | torch.device], torch.device]
    cpu_streams: int | None
    requirement: str | None = None


BACKENDS: Registry[Backend] = Registry("inference backend")


def _prepare_torch(model: LoadedModel, *, device: str | torch.device, threads: int | None) -> None:
    """Nothing to do: :func:`load_model` already put the networks on the device."""


def _prepare_onnxruntime(model: LoadedModel, *, device: str | torch.device, threads: int | None) -> None:
    from autounet.inference.onnx import OrtNetwork, to_onnxruntime

    if all(isinstance(n, OrtNetwork) for n in model.networks):
        return
    model.networks = to_onnxruntime(model, threads=threads, device=device)  # type: ignore[assignment]


def _prepare_openvino(model: LoadedModel, *, device: str | torch.device, threads: int | None) -> None:
    from autounet.errors import UsageError
    from autounet.inference.onnx import OpenVinoNetwork, to_openvino

    if str(device) not in ("cpu", "auto"):
        msg = f"The openvino backend runs on the CPU here, not {device!r}: use --device cpu."
        raise UsageError(msg)
    if all(isinstance(n, OpenVinoNetwork) for n in model.networks):
        return
    model.networks = to_openvino(model, threads=threads)  # type: ignore[assignment]


BACKENDS.add("torch", Backend("torch", _prepare_torch, resolve_device, None))
BACKENDS.add("onnxruntime", Backend("onnxruntime", _prepare_onnxruntime, lambda _d: torch.device("cpu"), 1,
                                    requirement="onnxruntime"), aliases=("ort", "onnx"))
BACKENDS.add("openvino", Backend("openvino", _prepare_openvino, lambda _d: torch.device("cpu"), 1,
                                 requirement="openvino"))


def get_backend(name: str) -> Backend:
    """The backend registered as ``name``; a clear error when its package is missing."""
    import importlib.util

    from autounet.errors import UsageError

    backend = BACKENDS.get(name)
    if backend.requirement and importlib.util.find_spec(backend.requirement) is None:
        msg = (f"The {backend.name} backend needs the '{backend.requirement}' package: "
               f"pip install 'autounet[{'openvino' if backend.name == 'openvino' else 'onnx'}]'.")
        raise UsageError(msg)
    return backend
