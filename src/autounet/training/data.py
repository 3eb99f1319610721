"""Batch assembly: a few loader threads read patches from the preprocessed store; nothing else happens there.

Augmentation runs afterwards on the training device, batched, in the main process. Each batch is fully decided by
``numpy.random.default_rng([seed, stream, epoch, iteration])`` (see :mod:`autounet.training.sampler`), so the
batches of a run do not depend on the number of workers, on prefetching or on an interruption and resume.

A batch holds ``data`` ``(B, C, *patch)`` float32 (padded with 0) and ``seg`` ``(B, S, *patch)`` int16 (padded with
-1); ``S`` is 2 for cascades (channel 1 is the previous stage's segmentation).
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict, deque
from collections.abc import Generator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np
import numpy.typing as npt

from autounet.errors import DatasetError
from autounet.training.sampler import Box, SampleSpec, plan_batch, split_box

if TYPE_CHECKING:
    import torch

TRAIN_STREAM = 0
VAL_STREAM = 1
OPEN_CASES = 64  # lazily opened cases kept open per loader (bounded file handles on large datasets)


class PatchStore(Protocol):
    """What the loader needs from ``autounet.preprocessing.CaseStore``."""

    def case_ids(self) -> list[str]: ...

    def properties(self, case: str) -> Any: ...  # a mapping or a record with ``class_locations``

    def open(self, case: str) -> Any: ...


@dataclass
class Batch:
    """One assembled batch (host memory; pinned torch tensors with ``pin_memory``) and the time its reading took."""

    data: np.ndarray | torch.Tensor
    seg: np.ndarray | torch.Tensor
    keys: list[str]
    forced: np.ndarray
    read_seconds: float = 0.0


def crop_and_pad(array: Any, box: Box, pad_value: float, dtype: npt.DTypeLike) -> np.ndarray:
    """Read ``array[:, box]`` (lazy arrays read only the needed chunks) and pad out-of-bounds parts.

    ``array`` is channel-first; ``box`` covers the spatial axes. A box that misses the array on some axis gives an
    all-zero patch (the reference's edge case), otherwise padding uses ``pad_value``.
    """
    shape = tuple(int(s) for s in array.shape[1:])
    slices, pad, empty = split_box(box, shape)
    out_shape = (int(array.shape[0]), *(hi - lo for lo, hi in box))
    if empty:
        return np.zeros(out_shape, dtype=dtype)
    patch = np.asarray(array[(slice(None), *slices)]).astype(dtype, copy=False)
    if any(p != (0, 0) for p in pad):
        patch = np.pad(patch, ((0, 0), *pad), mode="constant", constant_values=pad_value)
    return patch


class PreviousStage:
    """Reads the previous stage's segmentations for a cascade (``<folder>/<case>.b2nd``, ``.npy`` or ``.npz``)."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            raise DatasetError(
                f"Cascade input folder {self.folder} does not exist: predict the previous stage for all folds first "
                "(its validation predictions are written to predicted_next_stage/).")

    def open(self, case: str) -> Any:
        """A (lazy) ``(z, y, x)`` array of the case's previous-stage segmentation."""
        for suffix in (".b2nd", ".npy", ".npz"):
            path = self.folder / f"{case}{suffix}"
            if path.is_file():
                return _open_array(path)
        raise DatasetError(f"No previous-stage segmentation for case {case} in {self.folder}.")


def _open_array(path: Path) -> Any:
    if path.suffix == ".b2nd":
        import blosc2

        return blosc2.open(str(path), mode="r")
    if path.suffix == ".npy":
        return np.load(path, mmap_mode="r")
    with np.load(path) as npz:
        return npz[npz.files[0]]


def _open_case(store: PatchStore, case: str) -> tuple[Any, Any]:
    """``(data, seg)`` lazy arrays of one case from a CaseStore-like object."""
    opened = store.open(case)
    if isinstance(opened, tuple):
        return opened[0], opened[1]
    return opened.data, opened.seg


class BatchLoader:
    """Deterministic batches of patches read by ``workers`` threads, ``prefetch`` batches ahead.

    Args:
        store: the preprocessed case store of the configuration.
        case_ids: cases to sample from (a fold's train or validation list).
        batch_size: samples per batch (this rank's share under DDP).
        patch_size: size of the patch read (the enlarged initial patch for training), 2 or 3 axes.
        final_patch_size: the network's patch size (``need_to_pad = patch_size - final_patch_size``).
        oversample: share of forced-foreground samples.
        seed / stream: with the epoch and iteration they seed each batch's generator.
        previous_stage: cascade input reader, or ``None``.
        label_values: the values a stored segmentation may hold (the dataset's labels, ignore label included);
            a case whose record lists others, or a patch holding others, is refused with the case named, so the
            loss never sees an out-of-range target. ``None`` skips the check.

    Cases are checked against their store record when indexed (``store.check``: sizes always, checksums of files
    whose modification time changed); a patch that cannot be decoded raises a ``DatasetError`` naming the case
    and the command that repairs it.
    """

    def __init__(self, store: PatchStore, case_ids: Sequence[str], *, batch_size: int, patch_size: Sequence[int],
                 final_patch_size: Sequence[int], oversample: float, seed: int, stream: int = TRAIN_STREAM,
                 probabilistic: bool = False, has_ignore: bool = False, workers: int = 2, prefetch: int = 4,
                 previous_stage: PreviousStage | None = None, pin_memory: bool = False,
                 label_values: Sequence[int] | None = None) -> None:
        if not case_ids:
            raise DatasetError("No cases to sample batches from (empty split).")
        self.store = store
        self.case_ids = list(case_ids)
        self.batch_size = int(batch_size)
        self.is_2d = len(patch_size) == 2
        self.patch = (1, *patch_size) if self.is_2d else tuple(int(p) for p in patch_size)
        final = (1, *final_patch_size) if self.is_2d else tuple(final_patch_size)
        self.need_to_pad = tuple(int(p) - int(f) for p, f in zip(self.patch, final))
        self.oversample = float(oversample)
        self.seed, self.stream = int(seed), int(stream)
        self.probabilistic, self.has_ignore = probabilistic, has_ignore
        self.previous_stage = previous_stage
        self.pin_memory = pin_memory
        self.prefetch = max(1, int(prefetch))
        self.label_values = None if label_values is None else frozenset(int(v) for v in label_values)
        self._label_range = (-1, max(self.label_values)) if self.label_values else None
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="autounet-loader") if workers else None
        self._open: OrderedDict[str, tuple[Any, Any, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self.shapes: dict[str, tuple[int, ...]] = {}
        self.class_locations: dict[str, Mapping[Any, np.ndarray]] = {}
        for case in dict.fromkeys(self.case_ids):
            self._index(case)

    def _index(self, case: str) -> None:
        props = self.store.properties(case)
        check = getattr(self.store, "check", None)
        if check is not None:
            check(case)
        get = props.get if isinstance(props, Mapping) else lambda k: getattr(props, k, None)
        recorded = get("label_values")
        if recorded is not None and self.label_values is not None:
            extra = sorted({int(v) for v in recorded} - self.label_values)
            if extra:
                raise DatasetError(
                    f"Preprocessed case {case!r}: its segmentation holds label values {extra} that dataset.json "
                    f"does not declare (declared: {sorted(self.label_values)}); fix the label file, then run "
                    f"`autounet verify` and `autounet preprocess` again.")
        shape = get("shape_after_resampling")
        if shape is None:
            shape = self._arrays(case)[0].shape[1:]
        self.shapes[case] = tuple(int(s) for s in shape)
        self.class_locations[case] = {k: np.asarray(v) for k, v in (get("class_locations") or {}).items()}

    def _arrays(self, case: str) -> tuple[Any, Any, Any]:
        """The case's lazy arrays, kept open for the ``OPEN_CASES`` most recently used cases."""
        with self._lock:
            if case in self._open:
                self._open.move_to_end(case)
                return self._open[case]
        data, seg = _open_case(self.store, case)
        prev = self.previous_stage.open(case) if self.previous_stage is not None else None
        with self._lock:
            self._open[case] = (data, seg, prev)
            while len(self._open) > OPEN_CASES:
                self._open.popitem(last=False)
        return data, seg, prev

    # ---- one batch ----------------------------------------------------------------------------------------------
    def plan(self, epoch: int, iteration: int) -> list[SampleSpec]:
        """The samples of batch ``iteration`` of ``epoch`` (pure function of the seed and the counters)."""
        rng = np.random.default_rng([self.seed, self.stream, epoch, iteration])
        return plan_batch(self.case_ids, self.batch_size, patch=self.patch, need_to_pad=self.need_to_pad,
                          shapes=self.shapes, class_locations=self.class_locations, oversample=self.oversample,
                          rng=rng, probabilistic=self.probabilistic, has_ignore=self.has_ignore)

    def read(self, epoch: int, iteration: int) -> Batch:
        """Read and stack batch ``iteration`` of ``epoch``."""
        start = time.perf_counter()
        samples = self.plan(epoch, iteration)
        datas, segs = [], []
        for s in samples:
            data_patch, seg_patch = self._read_sample(s)
            datas.append(data_patch)
            segs.append(seg_patch)
        data_b, seg_b = np.stack(datas), np.stack(segs)
        if self.is_2d:
            data_b, seg_b = data_b[:, :, 0], seg_b[:, :, 0]
        if self.pin_memory:
            import torch

            data_out: np.ndarray | torch.Tensor = torch.from_numpy(np.ascontiguousarray(data_b)).pin_memory()
            seg_out: np.ndarray | torch.Tensor = torch.from_numpy(np.ascontiguousarray(seg_b)).pin_memory()
        else:
            data_out, seg_out = data_b, seg_b
        return Batch(data=data_out, seg=seg_out, keys=[s.case for s in samples],
                     forced=np.array([s.forced for s in samples]), read_seconds=time.perf_counter() - start)

    def _read_sample(self, s: SampleSpec) -> tuple[np.ndarray, np.ndarray]:
        """One sample's ``(data, seg)`` patches, refused (case named) when undecodable or out of contract."""
        try:
            data, seg, prev = self._arrays(s.case)
            data_patch = crop_and_pad(data, s.box, 0.0, np.float32)
            seg_patch = crop_and_pad(seg, s.box, -1, np.int16)
            prev_patch = crop_and_pad(_channel_first(prev), s.box, -1, np.int16) if prev is not None else None
        except DatasetError:
            raise
        except Exception as exc:  # noqa: BLE001 - a blosc2 decode error, a truncated chunk, an I/O error
            hint = getattr(self.store, "repair_hint", None)
            fix = hint(s.case) if callable(hint) else "preprocess the dataset again"
            raise DatasetError(f"Cannot read preprocessed case {s.case!r} ({type(exc).__name__}: {exc}); "
                               f"{fix}.") from exc
        if self._label_range is not None and seg_patch.size:
            lo, hi = int(seg_patch.min()), int(seg_patch.max())
            if lo < self._label_range[0] or hi > self._label_range[1]:
                declared = self.label_values or frozenset()  # set whenever _label_range is
                bad = sorted({int(v) for v in np.unique(seg_patch)} - declared - {-1})
                raise DatasetError(f"Preprocessed case {s.case!r}: its segmentation holds label values {bad} that "
                                   f"dataset.json does not declare (declared: {sorted(declared)}); fix the "
                                   "label file, then run `autounet verify` and `autounet preprocess` again.")
        if not np.isfinite(data_patch).all():
            raise DatasetError(f"Preprocessed case {s.case!r} holds NaN or infinite values; run `autounet verify` "
                               "on the raw data and `autounet preprocess` again.")
        if prev_patch is not None:
            seg_patch = np.concatenate([seg_patch, prev_patch], axis=0)
        return data_patch, seg_patch

    # ---- iteration ----------------------------------------------------------------------------------------------
    def batches(self, epoch: int, start: int, stop: int) -> Generator[Batch, None, None]:
        """Batches ``start .. stop-1`` of ``epoch``, read ahead by the worker threads."""
        if self._pool is None:
            for it in range(start, stop):
                yield self.read(epoch, it)
            return
        pending: deque[Future[Batch]] = deque()
        next_it = start
        try:
            while next_it < stop or pending:
                while next_it < stop and len(pending) < self.prefetch:
                    pending.append(self._pool.submit(self.read, epoch, next_it))
                    next_it += 1
                yield pending.popleft().result()
        finally:
            for fut in pending:
                fut.cancel()

    def close(self) -> None:
        """Stop the worker threads."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None


def _channel_first(array: Any) -> Any:
    """Previous-stage segmentations are stored as ``(z, y, x)`` or ``(1, z, y, x)``; give a channel axis."""
    return _ChannelView(array) if len(array.shape) == 3 else array


class _ChannelView:
    """A lazy ``(1, z, y, x)`` view of a lazy ``(z, y, x)`` array."""

    def __init__(self, array: Any) -> None:
        self.array = array
        self.shape = (1, *array.shape)

    def __getitem__(self, key: tuple[slice, ...]) -> np.ndarray:
        return np.asarray(self.array[key[1:]])[None]
