"""Precision names and the CPU's bf16 capability, without torch (shared by every inference backend and the CLI).

:mod:`autounet.networks.precision` maps these names to torch autocast dtypes; the OpenVINO backend maps them to
its inference precision hint.
"""

from __future__ import annotations

import functools
from pathlib import Path

from autounet.errors import UsageError

#: network precisions accepted by training's mixed precision and by ``predict --precision``
PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_CPU_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def check_precision_name(precision: str) -> None:
    """``UsageError`` unless ``precision`` is one of :data:`PRECISIONS`."""
    if precision not in PRECISIONS:
        msg = f"Unknown precision {precision!r}. Choose one of {', '.join(PRECISIONS)}."
        raise UsageError(msg)


@functools.lru_cache(maxsize=1)
def cpu_flags_have_bf16() -> bool:
    """True when ``/proc/cpuinfo`` lists bf16 dot-product instructions (AVX512-BF16 or AMX; Linux only)."""
    try:
        text = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return bool(_CPU_BF16_FLAGS.intersection(flags))
