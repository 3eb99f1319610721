"""Which reduced precision a network runs in on a device (training's mixed precision and inference's ``--precision``).

* CUDA: bf16 where the device supports it, else fp16 (``auto``); either on request.
* CPU: bf16 only on CPUs with native bf16 dot products (AVX512-BF16 or AMX), where oneDNN runs convolutions about
  twice as fast as in float32 (Hippocampus 3d_fullres on 2 AMD EPYC cores: a training step of 2 patches 1.7 s ->
  0.9 s, 8 inference tiles 2.8 s -> 1.4 s). Elsewhere bf16 would be emulated and slower, so it is refused; fp16
  is never used on the CPU.
* MPS and other devices: float32.

``None`` means "no autocast" (full float32).
"""

from __future__ import annotations

import functools

import torch

from autounet.errors import UsageError
from autounet.precision import PRECISIONS, check_precision_name, cpu_flags_have_bf16

__all__ = ["PRECISIONS", "autocast_dtype", "cpu_has_native_bf16"]


@functools.lru_cache(maxsize=1)
def cpu_has_native_bf16() -> bool:
    """True when this CPU has bf16 dot-product instructions and torch's oneDNN can use them (Linux only)."""
    if not cpu_flags_have_bf16():
        return False
    return bool(torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported())


def autocast_dtype(precision: str, device: torch.device, *, cpu_auto: bool = False) -> torch.dtype | None:
    """The autocast dtype for ``precision`` on ``device`` (None: float32).

    ``cpu_auto`` says what ``auto`` means on the CPU: bf16 where native (training's mixed precision) or float32
    (inference, which by default predicts on the CPU exactly as the reference does).
    """
    check_precision_name(precision)
    if precision == "fp32":
        return None
    if device.type == "cuda":
        if precision == "fp16":
            return torch.float16
        return torch.bfloat16 if precision == "bf16" or torch.cuda.is_bf16_supported() else torch.float16
    if device.type != "cpu":
        if precision in ("bf16", "fp16"):
            raise UsageError(f"Precision {precision} is not available on {device.type}; use fp32 or auto.")
        return None
    if precision == "fp16":
        raise UsageError("Precision fp16 is only available on CUDA devices; on the CPU use bf16 or fp32.")
    if precision == "auto" and not cpu_auto:
        return None
    if cpu_has_native_bf16():
        return torch.bfloat16
    if precision == "bf16":
        raise UsageError("This CPU has no native bf16 instructions (AVX512-BF16 or AMX), so bf16 would be slower "
                         "than float32; use --precision fp32 or auto.")
    return None
