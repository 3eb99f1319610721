"""Batch size from the remaining VRAM headroom, capped by the dataset-coverage rule (facts §3.6 step 8)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

MIN_BATCH_SIZE = 2


@dataclass(frozen=True)
class BatchSizeDecision:
    """Attributes: ``from_memory`` = round(budget / estimate x ref_bs); ``coverage_cap`` = round(dataset voxels x
    max coverage / patch voxels); ``batch_size`` = max(min(both), 2); ``limited_by`` names the binding rule."""

    from_memory: int
    coverage_cap: int
    batch_size: int
    limited_by: str


def batch_size(*, budget: float, estimate: int, ref_batch_size: int, dataset_voxels: float,
               patch_size: Sequence[int], max_dataset_covered: float,
               min_batch_size: int = MIN_BATCH_SIZE) -> BatchSizeDecision:
    """Batch size for one configuration (Python ``round``: half to even, as the reference)."""
    from_memory = round(budget / estimate * ref_batch_size)
    cap = round(dataset_voxels * max_dataset_covered / float(math.prod(int(p) for p in patch_size)))
    chosen = max(min(from_memory, cap), min_batch_size)
    if chosen == min_batch_size and min(from_memory, cap) < min_batch_size:
        limited_by = "minimum batch size"
    elif cap < from_memory:
        limited_by = "dataset coverage cap"
    else:
        limited_by = "GPU memory"
    return BatchSizeDecision(from_memory=from_memory, coverage_cap=cap, batch_size=chosen, limited_by=limited_by)
