"""Fingerprint extraction: per-case analysis (pure), parallel map over cases, bounded-memory aggregation."""

from __future__ import annotations

import dataclasses
import hashlib
import math
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from autounet._log import get_logger
from autounet._parallel import map_ordered
from autounet.errors import DatasetError
from autounet.fingerprint.crop import bbox_slices, nonzero_bbox
from autounet.fingerprint.intensity import (
    DEFAULT_MAX_BINS,
    PERCENTILES,
    SEED,
    ChannelAccumulator,
    ChannelSample,
    sample_foreground,
    samples_per_case,
)
from autounet.schemas._base import make_provenance
from autounet.schemas.fingerprint import Fingerprint, load_fingerprint, save_fingerprint
from autounet.workspace import DATASET_JSON

log = get_logger(__name__)


class RawDatasetLike(Protocol):
    """What extraction needs from ``autounet.dataset.RawDataset``."""

    @property
    def name(self) -> str: ...
    @property
    def root(self) -> Path: ...
    @property
    def spec(self) -> Any: ...
    @property
    def cases(self) -> Mapping[str, Any]: ...

    def reader_name(self) -> str: ...


@dataclass(frozen=True)
class CaseSummary:
    """The per-case analysis result (the reference's ``analyze_case`` output, minus its discarded stats)."""

    case_id: str
    spacing: tuple[float, ...]
    shape_before_crop: tuple[int, ...]
    shape_after_crop: tuple[int, ...]
    samples: tuple[ChannelSample, ...]

    @property
    def relative_size_after_crop(self) -> float:
        return math.prod(self.shape_after_crop) / math.prod(self.shape_before_crop)


@dataclass(frozen=True)
class CaseTask:
    """Inputs of one case for a worker process."""

    case_id: str
    images: tuple[str, ...]
    label: str
    reader: str
    num_samples: int
    expected_labels: tuple[int, ...] | None = None
    dataset: str | None = None


def analyze_case(images: np.ndarray, seg: np.ndarray, *, spacing: Sequence[float], num_samples: int,
                 case_id: str = "case", seed: int = SEED) -> CaseSummary:
    """Crop to the non-zero region and sample foreground intensities of one case.

    Args:
        images: ``(c, z, y, x)`` float image.
        seg: ``(1, z, y, x)`` label map; foreground is ``seg > 0`` (ignore labels included, as the reference).
        spacing: the reader's spacing (array axis order).
        num_samples: foreground samples per channel.
        case_id: used in error messages.
        seed: sampling seed.

    Raises:
        DatasetError: NaNs, or image/segmentation shapes that disagree.
    """
    if images.ndim != 4 or seg.ndim != 4 or seg.shape[0] != 1 or images.shape[1:] != seg.shape[1:]:
        msg = (f"case {case_id!r}: image shape {images.shape[1:]} and segmentation shape {seg.shape[1:]} differ "
               "(or the arrays are not (c, z, y, x) / (1, z, y, x)).")
        raise DatasetError(msg)
    if np.isnan(images).any() or (seg.dtype.kind == "f" and np.isnan(seg).any()):
        msg = f"case {case_id!r}: the image or segmentation contains NaN values."
        raise DatasetError(msg)
    bbox = nonzero_bbox(images)
    crop = bbox_slices(bbox)
    foreground = seg[0][crop] > 0
    channels = [images[c][crop][foreground] for c in range(images.shape[0])]
    return CaseSummary(case_id=case_id, spacing=tuple(float(s) for s in spacing),
                       shape_before_crop=tuple(int(s) for s in images.shape[1:]),
                       shape_after_crop=tuple(b - a for a, b in bbox),
                       samples=sample_foreground(channels, num_samples, seed=seed))


def analyze_task(task: CaseTask) -> CaseSummary:
    """Read one case with the chosen reader, enforce ``verify``'s per-case contract (no NaN/Inf, only declared
    label values, label geometry matching the image) and analyze it (runs in a worker process)."""
    from autounet.dataset._case_checks import check_read_case, raise_for_problems  # noqa: PLC0415
    from autounet.io import read_images, read_segmentation  # noqa: PLC0415 - imported in the worker

    images, geometry = read_images(list(task.images), reader=task.reader)
    seg, seg_geometry = read_segmentation(task.label, reader=task.reader)
    raise_for_problems(check_read_case(task.case_id, images, geometry, task.images, seg, seg_geometry, task.label,
                                       expected_labels=task.expected_labels), dataset=task.dataset)
    return analyze_case(images, seg, spacing=geometry.spacing, num_samples=task.num_samples,
                        case_id=task.case_id)


def aggregate(summaries: Iterable[CaseSummary], *, num_channels: int,
              max_bins: int = DEFAULT_MAX_BINS) -> Fingerprint:
    """Combine case summaries (any iterable, consumed once, in case order) into a :class:`Fingerprint`.

    Raises:
        DatasetError: a case with the wrong number of channels, or a channel without any foreground voxel.
    """
    accumulators = [ChannelAccumulator(max_bins=max_bins) for _ in range(num_channels)]
    ids, spacings, before, after, num_samples = [], [], [], [], 0
    for s in summaries:
        if len(s.samples) != num_channels:
            msg = f"case {s.case_id!r} has {len(s.samples)} channel(s); dataset.json declares {num_channels}."
            raise DatasetError(msg)
        for acc, sample in zip(accumulators, s.samples, strict=True):
            acc.add(sample)
        num_samples = max(num_samples, *(int(x.counts.sum()) for x in s.samples), 0)
        ids.append(s.case_id)
        spacings.append(s.spacing)
        before.append(s.shape_before_crop)
        after.append(s.shape_after_crop)
    if not ids:
        raise DatasetError("the dataset has no training cases to fingerprint.")
    properties, bounds = [], {}
    for channel, acc in enumerate(accumulators):
        result = acc.finalize()
        if result is None:
            msg = f"channel {channel}: no case has any foreground (label > 0) voxel; cannot compute intensities."
            raise DatasetError(msg)
        properties.append(result[0])
        bounds[str(channel)] = {"compactions": acc.compactions, "percentile_error_bound": result[1]}
    relative = float(np.median([math.prod(a) / math.prod(b) for a, b in zip(after, before, strict=True)]))
    sampling = {"samples_per_case": num_samples, "seed": SEED, "percentiles": list(PERCENTILES),
                "max_bins": max_bins, "exact": all(a.compactions == 0 for a in accumulators), "channels": bounds}
    return Fingerprint(spacings=tuple(spacings), shapes_after_crop=tuple(after),
                       foreground_intensity_properties_per_channel=tuple(properties),
                       median_relative_size_after_cropping=relative, case_identifiers=tuple(ids),
                       shapes_before_crop=tuple(before), intensity_sampling=sampling)


def case_tasks(raw_dataset: RawDatasetLike, *, reader: str | None = None) -> list[CaseTask]:
    """One task per labelled training case, in case-identifier order (the reference's order in folder mode)."""
    cases = raw_dataset.cases
    if not cases:
        msg = f"dataset {raw_dataset.name!r} ({raw_dataset.root}) has no training cases."
        raise DatasetError(msg)
    missing = [cid for cid, files in cases.items() if files.label is None]
    if missing:
        msg = (f"dataset {raw_dataset.name!r}: case(s) {', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}"
               " have no label; the fingerprint needs labelled training cases.")
        raise DatasetError(msg)
    reader = reader or choose_reader(raw_dataset)
    num_samples = samples_per_case(len(cases))
    expected = _expected_labels(raw_dataset.spec)
    return [CaseTask(cid, tuple(os.fspath(p) for p in files.images), os.fspath(files.label), reader, num_samples,
                     expected_labels=expected, dataset=raw_dataset.name)
            for cid, files in cases.items()]


def _expected_labels(spec: Any) -> tuple[int, ...] | None:
    """The label values dataset.json declares (``None`` for a spec without labels, e.g. a test double).

    Raises:
        DatasetError: labels that ``verify`` refuses (not consecutive, a bad ignore label).
    """
    from autounet.dataset.verification import expected_label_values  # noqa: PLC0415

    if getattr(spec, "labels", None) is None:
        return None
    return expected_label_values(spec)


def choose_reader(raw_dataset: RawDatasetLike) -> str:
    """The dataset's reader (``overwrite_image_reader_writer`` if set, else chosen by file ending, as the
    reference does)."""
    return str(raw_dataset.reader_name())


def extract(raw_dataset: RawDatasetLike, *, workers: int = 1, progress: bool = False,
            max_bins: int = DEFAULT_MAX_BINS, executor: Any | None = None) -> Fingerprint:
    """Compute the fingerprint of a raw dataset (parallel over cases; memory independent of the case count).

    Args:
        raw_dataset: an opened raw dataset (``autounet.dataset.open_raw_dataset``).
        workers: worker processes (1: in this process).
        progress: show a progress bar on stderr.
        max_bins: distinct intensities kept per channel before percentiles become approximate (see
            :mod:`autounet.fingerprint.intensity`).
        executor: where the cases run (default: the one installed with :func:`autounet._parallel.using`, else
            ``workers`` local processes).
    """
    tasks = case_tasks(raw_dataset)
    signature = dataset_signature(raw_dataset)  # before reading: a change during extraction makes it stale
    num_channels = len(raw_dataset.spec.channel_names)
    summaries = map_ordered(analyze_task, tasks, workers=workers, progress=progress,
                            desc="Extracting dataset fingerprint", executor=executor)
    fingerprint = aggregate(summaries, num_channels=num_channels, max_bins=max_bins)
    provenance = make_provenance("autounet.fingerprint")
    provenance["dataset_signature"] = signature
    return dataclasses.replace(fingerprint, image_reader=tasks[0].reader, provenance=provenance)


def dataset_signature(raw_dataset: RawDatasetLike) -> str:
    """Hash of the case list with each file's path (relative to the dataset folder, so that moving the dataset
    keeps it), size and modification time, plus dataset.json's content."""
    h = hashlib.sha256()
    root = Path(raw_dataset.root)
    spec_file = root / DATASET_JSON
    if spec_file.is_file():
        h.update(spec_file.read_bytes())
    for cid, files in raw_dataset.cases.items():
        h.update(cid.encode())
        for p in (*files.images, files.label):
            if p is None:
                continue
            path = Path(p)
            st = path.stat()
            name = path.relative_to(root) if path.is_relative_to(root) else path
            h.update(f"{name.as_posix()}|{st.st_size}|{st.st_mtime_ns}".encode())
    return h.hexdigest()


def ensure_fingerprint(raw_dataset: RawDatasetLike, path: str | os.PathLike[str], *, clean: bool = False,
                       workers: int = 1, progress: bool = False) -> Fingerprint:
    """Load ``path`` if it fingerprints the dataset as it is now, else extract and save it.

    A fingerprint written by the reference (no dataset signature) is reused as the reference would.
    """
    path = Path(path)
    if path.is_file() and not clean:
        existing = load_fingerprint(path)
        signature = existing.provenance.get("dataset_signature")
        if signature is None:
            log.warning("Reusing %s (no dataset signature to check it against; use --clean to recompute).", path)
            return existing
        if signature == dataset_signature(raw_dataset):
            log.info("Dataset unchanged: reusing %s", path)
            return existing
        log.info("Dataset changed since %s was written: recomputing the fingerprint.", path)
    fingerprint = extract(raw_dataset, workers=workers, progress=progress)
    save_fingerprint(path, fingerprint)
    return fingerprint
