"""Foreground locations per class, sampled once per case for foreground oversampling during training.

The rule and the random stream are the reference's, so the same voxels are chosen:

* classes: the foreground labels (or foreground regions, each a tuple of labels meaning "any of these"); with an
  ignore label one more key, ``(-1, *labels without the ignore label)``, stands for "annotated voxels";
* a fresh ``numpy.random.RandomState(seed)`` (seed 1234) per case, used once per class in order;
* a class with ``n`` voxels gets ``k = max(min(10000, n), ceil(0.01 * n))`` voxels drawn without replacement
  (``RandomState.choice(n, k, replace=False)``) from its voxels listed label by label (in the class's label
  order), each label's voxels in C order; a class without voxels gets an empty array;
* coordinates are ``(k, 4)`` int64 arrays: 0 (the channel) and the three spatial indices.

Unlike the reference, no coordinate list of all foreground voxels is built: voxel ranks are resolved slice by
slice, so the memory beyond the draw itself is one boolean mask and one slice of indices.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from typing import Protocol

import numpy as np

DEFAULT_SEED = 1234
MAX_SAMPLES = 10000
MIN_FRACTION = 0.01

ClassKey = int | tuple[int, ...]


class LabelInfo(Protocol):
    """What class-location sampling needs from ``autounet.labels.LabelSpec``."""

    @property
    def has_regions(self) -> bool: ...

    @property
    def foreground_labels(self) -> Sequence[int]: ...

    @property
    def ignore_label(self) -> int | None: ...

    @property
    def all_labels(self) -> Sequence[int]: ...


def classes_to_sample(labels: LabelInfo) -> list[ClassKey]:
    """The class keys the reference samples for a label specification (see the module docstring)."""
    if labels.has_regions:
        keys: list[ClassKey] = [_key(r) for r in _foreground_regions(labels)]
    else:
        keys = [int(lab) for lab in labels.foreground_labels]
    ignore = labels.ignore_label
    if ignore is not None:
        keys.append((-1, *(int(lab) for lab in labels.all_labels if lab != ignore)))
    return keys


def _foreground_regions(labels: LabelInfo) -> list[int | tuple[int, ...]]:
    """Foreground regions as the dataset declares them: a region given as one int stays an int (reference keys)."""
    mapping = getattr(labels, "labels", None)
    if mapping is not None and (isinstance(mapping, dict) or hasattr(mapping, "items")):
        out: list[int | tuple[int, ...]] = []
        for name, value in mapping.items():
            values = tuple(value) if isinstance(value, list | tuple) else (value,)
            if name == "ignore" or all(int(v) == 0 for v in values):
                continue
            out.append(int(value) if not isinstance(value, list | tuple) else tuple(int(v) for v in value))
        return out
    return list(labels.regions)  # type: ignore[attr-defined]


def _key(region: int | Iterable[int]) -> ClassKey:
    if isinstance(region, list | tuple | np.ndarray):
        return tuple(int(x) for x in region)
    return int(region)  # type: ignore[arg-type]


def sample_count(n: int, *, max_samples: int = MAX_SAMPLES, min_fraction: float = MIN_FRACTION) -> int:
    """How many of a class's ``n`` voxels are kept: ``max(min(max_samples, n), ceil(min_fraction * n))``."""
    return max(min(max_samples, n), int(math.ceil(n * min_fraction)))


def _voxels_at_ranks(mask: np.ndarray, ranks: np.ndarray) -> np.ndarray:
    """Spatial coordinates ``(len(ranks), ndim)`` of the ``ranks``-th True voxels of ``mask`` in C order."""
    per_slice = np.count_nonzero(mask.reshape(mask.shape[0], -1), axis=1)
    ends = np.cumsum(per_slice)
    slice_of = np.searchsorted(ends, ranks, side="right")
    within = ranks - (ends[slice_of] - per_slice[slice_of])
    out = np.empty((ranks.size, mask.ndim), dtype=np.int64)
    order = np.argsort(slice_of, kind="stable")
    bounds = np.flatnonzero(np.diff(slice_of[order])) + 1
    for group in np.split(order, bounds):
        if group.size == 0:
            continue
        z = int(slice_of[group[0]])
        flat = np.flatnonzero(mask[z])[within[group]]
        out[group, 0] = z
        out[group, 1:] = np.stack(np.unravel_index(flat, mask.shape[1:]), axis=1)
    return out


def _label_counts(seg: np.ndarray, *, slab: int = 1 << 22) -> dict[int, int]:
    """Voxel count of every value present in an integer segmentation (one pass, in slabs of ``slab`` voxels)."""
    lo, hi = int(seg.min()), int(seg.max())
    counts = np.zeros(hi - lo + 1, dtype=np.int64)
    flat = seg.reshape(-1)
    for start in range(0, flat.size, slab):
        part = flat[start:start + slab].astype(np.intp) - lo
        counts += np.bincount(part, minlength=counts.size)
    return {int(v) + lo: int(counts[v]) for v in np.flatnonzero(counts)}


def _sample_class(seg: np.ndarray, labels: tuple[int, ...], label_counts: dict[int, int],
                  rng: np.random.RandomState, max_samples: int, min_fraction: float) -> np.ndarray:
    counts = np.array([label_counts.get(lab, 0) for lab in labels], dtype=np.int64)
    total = int(counts.sum())
    if total == 0:
        return np.zeros((0, seg.ndim + 1), dtype=np.int64)
    k = sample_count(total, max_samples=max_samples, min_fraction=min_fraction)
    offsets = rng.choice(total, k, replace=False)
    ends = np.cumsum(counts)
    which = np.searchsorted(ends, offsets, side="right")
    ranks = offsets - (ends - counts)[which]
    coords = np.empty((k, seg.ndim + 1), dtype=np.int64)
    coords[:, 0] = 0
    for i, lab in enumerate(labels):
        pick = which == i
        if pick.any():
            coords[pick, 1:] = _voxels_at_ranks(seg == lab, ranks[pick])
    return coords


def sample_class_locations(seg: np.ndarray, classes: Sequence[ClassKey], *, seed: int = DEFAULT_SEED,
                           max_samples: int = MAX_SAMPLES,
                           min_fraction: float = MIN_FRACTION) -> dict[ClassKey, np.ndarray]:
    """Sample voxel coordinates per class from a segmentation ``(1, z, y, x)`` (or ``(z, y, x)``).

    Returns a dict in the order of ``classes``: key (int label or tuple region) -> ``(k, 4)`` int64 array.
    """
    spatial = seg[0] if seg.ndim == 4 else seg
    rng = np.random.RandomState(seed)
    label_counts = _label_counts(spatial) if spatial.size else {}
    out: dict[ClassKey, np.ndarray] = {}
    for cls in classes:
        key = _key(cls)
        labs = key if isinstance(key, tuple) else (key,)
        out[key] = _sample_class(spatial, labs, label_counts, rng, max_samples, min_fraction)
    return out
