"""Patch sampling: which cases, which patch boxes, which samples are forced to contain foreground.

Pure numpy, no I/O. Every decision for one batch is made from one ``numpy.random.Generator``, so the loader can
derive a generator per (seed, epoch, iteration) and batches do not depend on worker timing or on a resume.

The rules are the reference's (§5.3): cases drawn uniformly with replacement; sample ``j`` of a batch of ``B`` is
forced to contain foreground iff ``j >= round(B * (1 - p))``; patch lower corners uniform in ``[lb, ub]``, or
centred on a stored voxel of a randomly chosen class for forced samples (not clamped to ``ub``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from autounet._log import get_logger

log = get_logger(__name__)
Box = tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class SampleSpec:
    """One sample of a batch: the case and the half-open patch box ``[(lo, hi), ...]`` per spatial axis."""

    case: str
    box: Box
    forced: bool


def forced_foreground_mask(batch_size: int, percent: float, *, probabilistic: bool = False,
                           rng: np.random.Generator | None = None) -> np.ndarray:
    """Which samples of a batch must contain foreground.

    Deterministic rule (reference default): sample ``j`` is forced iff ``j >= round(B * (1 - percent))`` (Python
    round, half to even). Probabilistic variant: each sample independently with probability ``percent``.
    """
    if probabilistic:
        if rng is None:
            raise ValueError("probabilistic oversampling needs an rng")
        return rng.uniform(size=batch_size) < percent
    threshold = round(batch_size * (1 - percent))
    return np.arange(batch_size) >= threshold


def rank_batch_and_oversampling(global_batch: int, percent: float, rank: int, world: int) -> tuple[int, float]:
    """Per-rank batch size and oversampling share under DDP, keeping the global forced-sample pattern (§5.12).

    The first ``global_batch % world`` ranks get one more sample. A rank whose samples all lie before the forced
    threshold gets 0, all after it 1, otherwise the fraction of its samples that the global rule forces.
    """
    if global_batch < world:
        from autounet.errors import ConfigError

        raise ConfigError(f"Batch size {global_batch} is smaller than the number of processes ({world}).")
    sizes = [global_batch // world + (1 if (global_batch // world) * world + i < global_batch else 0)
             for i in range(world)]
    low, high = sum(sizes[:rank]), sum(sizes[:rank + 1])
    forced = forced_foreground_mask(global_batch, percent)
    if high / global_batch < 1 - percent:
        share = 0.0
    elif low / global_batch > 1 - percent:
        share = 1.0
    else:
        share = float(forced[low:high].sum()) / sizes[rank]
    return sizes[rank], share


def patch_bounds(shape: Sequence[int], patch: Sequence[int], need_to_pad: Sequence[int]) -> tuple[list[int], list[int]]:
    """Inclusive range ``[lb, ub]`` of patch lower corners per axis (reference ``get_bbox``)."""
    lbs, ubs = [], []
    for s, p, n in zip(shape, patch, need_to_pad):
        n = max(int(n), int(p) - int(s)) if n + s < p else int(n)
        lbs.append(-n // 2)
        ubs.append(int(s) + n // 2 + n % 2 - int(p))
    return lbs, ubs


def _is_annotated_key(key: Any) -> bool:
    """The ignore-label "annotated" key: a tuple of labels (reference) or its string forms."""
    if isinstance(key, tuple | list):
        return True
    return isinstance(key, str) and (key == "annotated" or "," in key or key.startswith("("))


def eligible_classes(class_locations: Mapping[Any, np.ndarray], *, has_ignore: bool = False) -> list[Any]:
    """Non-empty classes for forced sampling; with an ignore label the annotated key is dropped when other classes
    exist. Without one, tuple keys are regions and all of them stay eligible."""
    keys = [k for k, v in class_locations.items() if len(v) > 0]
    annotated = annotated_key({k: class_locations[k] for k in keys}) if has_ignore else None
    if annotated is not None and len(keys) > 1:
        keys.remove(annotated)
    return keys


def annotated_key(class_locations: Mapping[Any, np.ndarray]) -> Any | None:
    """The key of the annotated-voxel locations (ignore-label datasets), if stored.

    It is the reference's tuple of all labels, i.e. the annotated-looking key covering the most labels (region keys
    of a region dataset with an ignore label are tuples too, but cover fewer labels).
    """
    candidates = [k for k in class_locations if _is_annotated_key(k)]
    if not candidates:
        return None
    return max(candidates, key=lambda k: len(k) if isinstance(k, tuple | list) else len(str(k).split(",")))


def choose_lower_corner(shape: Sequence[int], patch: Sequence[int], need_to_pad: Sequence[int], *,
                        forced: bool, class_locations: Mapping[Any, np.ndarray] | None,
                        rng: np.random.Generator, has_ignore: bool = False, case: str = "") -> list[int]:
    """Lower corner of one patch (reference ``get_bbox`` semantics).

    ``class_locations`` maps a class (or the annotated key) to an ``(N, ndim)`` or ``(N, ndim + 1)`` integer array
    of voxel coordinates (a leading channel column is ignored).
    """
    lbs, ubs = patch_bounds(shape, patch, need_to_pad)
    ndim = len(shape)
    selected = None
    if forced and class_locations:
        keys = eligible_classes(class_locations, has_ignore=has_ignore)
        if keys:
            selected = keys[int(rng.integers(len(keys)))]
    elif not forced and has_ignore and class_locations:
        key = annotated_key(class_locations)
        if key is not None and len(class_locations[key]) > 0:
            selected = key
        else:
            log.warning("Case %s has no annotated voxels; sampling a random patch.", case)
    if selected is None or class_locations is None:  # a class is selected only from class_locations
        return [int(rng.integers(lo, hi + 1)) for lo, hi in zip(lbs, ubs)]
    voxels = np.asarray(class_locations[selected])
    voxel = voxels[int(rng.integers(len(voxels)))][-ndim:]
    return [max(lbs[i], int(voxel[i]) - int(patch[i]) // 2) for i in range(ndim)]


def plan_batch(case_ids: Sequence[str], batch_size: int, *, patch: Sequence[int], need_to_pad: Sequence[int],
               shapes: Mapping[str, Sequence[int]], class_locations: Mapping[str, Mapping[Any, np.ndarray]],
               oversample: float, rng: np.random.Generator, probabilistic: bool = False,
               has_ignore: bool = False) -> list[SampleSpec]:
    """Decide a whole batch: cases (uniform, with replacement), forced samples and patch boxes."""
    picks = rng.choice(len(case_ids), batch_size, replace=True)
    forced = forced_foreground_mask(batch_size, oversample, probabilistic=probabilistic, rng=rng)
    samples = []
    for j, idx in enumerate(picks):
        case = case_ids[int(idx)]
        lower = choose_lower_corner(shapes[case], patch, need_to_pad, forced=bool(forced[j]),
                                    class_locations=class_locations.get(case), rng=rng, has_ignore=has_ignore,
                                    case=case)
        box = tuple((lo, lo + int(p)) for lo, p in zip(lower, patch))
        samples.append(SampleSpec(case=case, box=box, forced=bool(forced[j])))
    return samples


def split_box(box: Box, shape: Sequence[int]) -> tuple[tuple[slice, ...], tuple[tuple[int, int], ...], bool]:
    """Split a possibly out-of-bounds box into the in-bounds read slices and the padding per axis.

    Returns ``(slices, pad, empty)``; ``empty`` is True when the box misses the array on some axis (the reference
    then returns an all-zero patch).
    """
    slices, pad, empty = [], [], False
    for (lo, hi), s in zip(box, shape):
        a, b = max(lo, 0), min(hi, int(s))
        if b <= a:
            empty = True
            a = b = 0
        slices.append(slice(a, b))
        pad.append((a - lo, hi - b) if not empty else (0, 0))
    return tuple(slices), tuple(pad), empty
