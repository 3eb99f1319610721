"""Inference backends: what runs the network inside the sliding window (a registry of small records).

``torch`` (default) runs the PyTorch networks on the chosen device, on torch tensors. ``onnxruntime`` converts
them to ONNX in memory (or loads an ``.onnx`` file written by :func:`autounet.inference.onnx.export_onnx`) and runs
ONNX Runtime sessions on the CPU (or its CUDA provider); ``openvino`` (optional, ``pip install openvino``) compiles
the same ONNX graph with OpenVINO for the CPU. Both work on NumPy arrays (device
:data:`~autounet.inference.arrays.HOST`), so from an ``.onnx`` file they never import torch. Tiling, mirroring,
Gaussian weighting and export stay the same code.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from autounet.errors import UsageError
from autounet.inference.arrays import HOST, Device
from autounet.inference.model import LoadedModel, resolve_device
from autounet.precision import check_precision_name, cpu_flags_have_bf16
from autounet.registry import Registry


@dataclass(frozen=True)
class Backend:
    """One backend.

    Attributes:
        name: the registry name (``--backend``).
        prepare: ``prepare(model, device=..., threads=..., precision=...)`` swaps ``model.networks`` for the
            backend's callables.
        buffer_device: the device of tiles and accumulation buffers, from the requested device string: a
            ``torch.device``, or :data:`~autounet.inference.arrays.HOST` for backends that work on NumPy arrays.
        check_precision: ``check_precision(precision, buffer_device)`` raises ``UsageError`` for a precision the
            backend cannot run here (called before any case is read).
        cpu_streams: concurrent network calls on the CPU (``None``: the sliding window's default). Backends with
            their own thread pool use 1.
        requirement: the Python module the backend needs (checked when it is chosen).
    """

    name: str
    prepare: Callable[..., None]
    buffer_device: Callable[[Any], Device]
    check_precision: Callable[[str, Device], None]
    cpu_streams: int | None
    requirement: str | None = None


BACKENDS: Registry[Backend] = Registry("inference backend")


def _prepare_torch(model: LoadedModel, *, device: Any, threads: int | None, precision: str) -> None:
    """Nothing to do: :func:`load_model` already put the networks on the device."""


def _check_torch_precision(precision: str, device: Device) -> None:
    from autounet.networks.precision import autocast_dtype

    autocast_dtype(precision, device)


def _prepare_onnxruntime(model: LoadedModel, *, device: Any, threads: int | None, precision: str) -> None:
    from autounet.inference.onnx_runtime import OrtNetwork

    if all(isinstance(n, OrtNetwork) for n in model.networks):
        return
    from autounet.inference.onnx import to_onnxruntime

    model.networks = list(to_onnxruntime(model, threads=threads, device=device))


def _check_onnxruntime_precision(precision: str, device: Device) -> None:
    check_precision_name(precision)
    if precision not in ("auto", "fp32"):
        msg = (f"The onnxruntime backend runs the float32 graph; --precision {precision} is not available there "
               "(use --backend openvino --precision bf16, or --backend torch).")
        raise UsageError(msg)


def _prepare_openvino(model: LoadedModel, *, device: Any, threads: int | None, precision: str) -> None:
    from autounet.inference.onnx_runtime import OpenVinoNetwork

    if str(device) not in ("cpu", "auto"):
        msg = f"The openvino backend runs on the CPU here, not {device!r}: use --device cpu."
        raise UsageError(msg)
    if all(isinstance(n, OpenVinoNetwork) for n in model.networks):
        return
    from autounet.inference.onnx import to_openvino

    model.networks = list(to_openvino(model, threads=threads, precision=precision))


def _check_openvino_precision(precision: str, device: Device) -> None:
    check_precision_name(precision)
    if precision == "fp16":
        msg = "The openvino backend runs on the CPU: --precision fp16 is not available there (use bf16 or fp32)."
        raise UsageError(msg)
    if precision == "bf16" and not cpu_flags_have_bf16():
        msg = ("This CPU has no native bf16 instructions (AVX512-BF16 or AMX), so bf16 would be slower than "
               "float32; use --precision fp32 or auto.")
        raise UsageError(msg)


def _host(_device: Any) -> Device:
    return HOST


BACKENDS.add("torch", Backend("torch", _prepare_torch, resolve_device, _check_torch_precision, None))
BACKENDS.add("onnxruntime", Backend("onnxruntime", _prepare_onnxruntime, _host, _check_onnxruntime_precision, 1,
                                    requirement="onnxruntime"), aliases=("ort", "onnx"))
BACKENDS.add("openvino", Backend("openvino", _prepare_openvino, _host, _check_openvino_precision, 1,
                                 requirement="openvino"))


def get_backend(name: str) -> Backend:
    """The backend registered as ``name``; a clear error when its package is missing."""
    import importlib.util

    backend = BACKENDS.get(name)
    if backend.requirement and importlib.util.find_spec(backend.requirement) is None:
        msg = (f"The {backend.name} backend needs the '{backend.requirement}' package: "
               f"pip install 'autounet[{'openvino' if backend.name == 'openvino' else 'onnx'}]'.")
        raise UsageError(msg)
    return backend
