"""The array library of the inference path: torch tensors for the torch backend, NumPy arrays for the others.

The sliding window and the export are written once against the Python array API (through ``array-api-compat``):
they follow the namespace of the arrays they are given. A *device* says which: a ``torch.device`` means torch
tensors on that device, the string :data:`HOST` means NumPy arrays in host memory. The ONNX Runtime and OpenVINO
backends use :data:`HOST`, so predicting from an exported ``.onnx`` file never imports torch (about 1.5 s of
start-up saved per command, and a deployment does not need torch at all).
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any

import numpy as np
from array_api_compat import array_namespace, is_torch_array

#: the device of backends that work on NumPy arrays in host memory
HOST = "cpu"

#: a ``torch.device`` or :data:`HOST`
Device = Any


def is_host(device: Device) -> bool:
    """Whether ``device`` means NumPy arrays (:data:`HOST`) rather than torch tensors."""
    return isinstance(device, str)


def device_type(device: Device) -> str:
    """``cpu``, ``cuda``, ``mps``, ... (``cpu`` for :data:`HOST`)."""
    return "cpu" if is_host(device) else str(device.type)


def namespace(device: Device) -> Any:
    """The array-API namespace of arrays on ``device``."""
    return _namespace(is_host(device))


@functools.lru_cache(maxsize=2)
def _namespace(host: bool) -> Any:
    if host:
        return array_namespace(np.empty(0))
    import torch

    return array_namespace(torch.empty(0))


def as_array(x: Any, device: Device) -> Any:
    """``x`` (NumPy array or torch tensor) as a float32 array of ``device``'s library, on that device."""
    if is_host(device):
        return np.asarray(to_numpy(x), dtype=np.float32)
    import torch

    return torch.as_tensor(x).to(device, dtype=torch.float32)


def move(x: Any, device: Device) -> Any:
    """``x`` on ``device`` (host-to-GPU copies do not block; GPU-to-host copies complete before returning)."""
    if is_host(device):
        return to_numpy(x)
    return x.to(device, non_blocking=device.type == "cuda")


def to_numpy(x: Any) -> np.ndarray:
    """A NumPy view or copy of ``x`` in host memory."""
    if is_torch_array(x):
        return x.detach().cpu().numpy()
    return np.asarray(x)


def no_grad(x: Any) -> contextlib.AbstractContextManager[Any]:
    """``torch.inference_mode()`` when ``x`` is a tensor (no autograd bookkeeping), else nothing."""
    if is_torch_array(x):
        import torch

        return torch.inference_mode()
    return contextlib.nullcontext()
