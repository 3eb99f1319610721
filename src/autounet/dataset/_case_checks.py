"""Per-case checks of ``verify`` (run in worker processes; everything here is picklable)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from autounet.dataset.raw import IMAGES_TR, LABELS_TR, CaseFiles
from autounet.errors import AutounetError, DatasetError
from autounet.io import ImageGeometry, ReaderWriter


@dataclass(frozen=True)
class Problem:
    """One finding: ``check`` is a short machine-readable name (``missing_label``, ``spacing_mismatch``, ...)."""

    check: str
    message: str
    case: str | None = None
    file: str | None = None

    def __str__(self) -> str:
        where = " ".join(x for x in (f"case {self.case}:" if self.case else "", f"{self.file}:" if self.file else "")
                         if x)
        return f"{where} {self.message}" if where else self.message

    def to_dict(self) -> dict[str, Any]:
        return {"check": self.check, "case": self.case, "file": self.file, "message": self.message}


@dataclass(frozen=True)
class Tolerances:
    """Geometry tolerances between the channels and the label of a case.

    Attributes:
        spacing_rtol: relative spacing difference allowed per axis.
        origin_atol_mm: absolute origin difference allowed per axis (mm).
        direction_atol: absolute difference allowed per direction-cosine entry.
    """

    spacing_rtol: float = 1e-3
    origin_atol_mm: float = 1e-3
    direction_atol: float = 1e-3


@dataclass(frozen=True)
class CaseContext:
    """What every per-case check needs to know about the dataset."""

    n_channels: int
    file_ending: str
    reader: str | None
    expected_labels: tuple[int, ...] | None
    tolerances: Tolerances
    explicit: bool


@dataclass
class _Findings:
    case: str
    problems: list[Problem]
    warnings: list[Problem]

    def error(self, check: str, message: str, file: Path | str | None = None) -> None:
        self.problems.append(Problem(check, message, case=self.case, file=None if file is None else str(file)))

    def warn(self, check: str, message: str, file: Path | str | None = None) -> None:
        self.warnings.append(Problem(check, message, case=self.case, file=None if file is None else str(file)))


def check_case(case: str, files: CaseFiles, ctx: CaseContext) -> tuple[list[Problem], list[Problem]]:
    """All per-case checks of one case; returns ``(problems, warnings)``."""
    out = _Findings(case, [], [])
    if files.label is None or not files.label.exists():
        expected = files.label or f"{LABELS_TR}/{case}{ctx.file_ending}"
        out.error("missing_label", "label file is missing", expected)
    if ctx.reader is None:
        _check_channel_files(files, ctx, out, n_read=None)
        return out.problems, out.warnings
    images = [_read_image(p, ctx, out) for p in files.images]
    label = _read_label(files.label, ctx, out) if files.label is not None and files.label.exists() else None
    readable = [(p, r) for p, r in zip(files.images, images) if r is not None]
    n_read = sum(r[0].shape[0] for _, r in readable) if len(readable) == len(files.images) else None
    _check_channel_files(files, ctx, out, n_read=n_read)
    if readable:
        _check_geometry(readable, label, files.label, ctx.tolerances, out)
    return out.problems, out.warnings


# ---- channel files ---------------------------------------------------------------------------------------------
def _indices(files: CaseFiles, ctx: CaseContext) -> list[int]:
    pattern = re.compile(rf"_(\d{{4}}){re.escape(ctx.file_ending)}$")
    return [int(m[1]) for p in files.images if (m := pattern.search(p.name))]


def _check_channel_files(files: CaseFiles, ctx: CaseContext, out: _Findings, *, n_read: int | None) -> None:
    """Missing/extra ``_XXXX`` files (folder mode), else a channel count that differs from ``channel_names``.

    ``n_read`` is the number of channels the files hold (``None`` if some could not be read); one file may hold all
    channels (RGB images, 4D files), which is not a missing file.
    """
    present = set(_indices(files, ctx)) if not ctx.explicit else set(range(len(files.images)))
    missing = [i for i in range(ctx.n_channels) if i not in present]
    extra = sorted(present - set(range(ctx.n_channels)))
    if n_read == ctx.n_channels:
        return
    if not missing and not extra:
        if n_read is not None:
            out.error("channel_count", f"the image files hold {n_read} channel(s) but dataset.json declares "
                      f"{ctx.n_channels}", files.images[0] if files.images else None)
        return
    folder = files.images[0].parent if files.images else Path(IMAGES_TR)
    declared = f"dataset.json declares {ctx.n_channels} channel(s)"
    for i in missing:
        name = folder / f"{out.case}_{i:04d}{ctx.file_ending}" if not ctx.explicit else None
        out.error("missing_channel", f"channel file {i:04d} is missing ({declared})", name)
    for i in extra:
        name = folder / f"{out.case}_{i:04d}{ctx.file_ending}" if not ctx.explicit else files.images[i]
        out.error("extra_channel", f"channel file {i:04d} is not declared ({declared}: indices "
                  f"0000-{ctx.n_channels - 1:04d})", name)


# ---- reading -----------------------------------------------------------------------------------------------------
def _reader(path: Path, ctx: CaseContext) -> ReaderWriter:
    """The dataset's reader; DICOM series folders and plain files may be mixed (e.g. a NRRD label for a series)."""
    from autounet.io import file_ending_of, get_reader, reader_for

    if path.is_dir():
        return get_reader("dicom_series")
    if ctx.reader == "dicom_series":
        return get_reader(reader_for(file_ending_of(path), example=path))
    return get_reader(ctx.reader or "")


def _read_image(path: Path, ctx: CaseContext, out: _Findings) -> tuple[np.ndarray, ImageGeometry] | None:
    if not path.exists():
        out.error("missing_image", "image file is missing", path)
        return None
    try:
        array, geometry = _reader(path, ctx).read_one(path, segmentation=False)
    except AutounetError as exc:
        out.error("unreadable", _strip_path(str(exc), path), path)
        return None
    if array.size == 0:
        out.error("empty_image", f"image has no voxels (shape {array.shape[1:]})", path)
        return array, geometry
    if np.issubdtype(array.dtype, np.floating):
        n_nan, n_inf = _nonfinite(array, path)
        if n_nan or n_inf:
            out.error("nan_inf", f"image has {n_nan} NaN and {n_inf} infinite voxel(s)", path)
            return array, geometry
    lo, hi = array.min(), array.max()
    if lo == hi:
        out.error("empty_image", f"image is constant (every voxel is {lo.item():g}); it carries no information",
                  path)
    return array, geometry


def _nonfinite(array: np.ndarray, path: Path) -> tuple[int, int]:
    """NaN and infinite counts, from the array or (NIfTI, where ITK reads them as 0) from the stored values."""
    from autounet.io._integrity import nifti_nonfinite

    n_nan, n_inf = int(np.count_nonzero(np.isnan(array))), int(np.count_nonzero(np.isinf(array)))
    if n_nan or n_inf:
        return n_nan, n_inf
    return nifti_nonfinite(path)


def _read_label(path: Path, ctx: CaseContext, out: _Findings) -> tuple[np.ndarray, ImageGeometry] | None:
    try:
        seg, geometry = _reader(path, ctx).read_segmentation(path)
    except AutounetError as exc:
        out.error("unreadable", _strip_path(str(exc), path), path)
        return None
    if seg.size == 0:
        out.error("empty_image", f"label has no voxels (shape {seg.shape[1:]})", path)
        return seg, geometry
    values = _label_values(seg, path, out)
    if values is not None and ctx.expected_labels is not None:
        _check_label_values(values, ctx.expected_labels, path, out)
    return seg, geometry


def _label_values(seg: np.ndarray, path: Path, out: _Findings) -> np.ndarray | None:
    if np.issubdtype(seg.dtype, np.floating):
        n_nan, n_inf = _nonfinite(seg, path)
        if n_nan or n_inf:
            out.error("nan_inf", f"label has {n_nan} NaN and {n_inf} infinite voxel(s)", path)
            return None
        frac = seg != np.round(seg)
        if frac.any():
            examples = ", ".join(f"{v:g}" for v in np.unique(seg[frac])[:5])
            out.error("non_integer_labels", f"label has {int(frac.sum())} voxel(s) with non-integer values "
                      f"(e.g. {examples}); labels must be whole numbers (was it resampled with interpolation?)", path)
            return None
    if np.issubdtype(seg.dtype, np.unsignedinteger) and seg.dtype.itemsize <= 2:
        counts = np.bincount(seg.ravel())
        return np.flatnonzero(counts)
    return np.unique(seg)


def _check_label_values(values: np.ndarray, expected: tuple[int, ...], path: Path, out: _Findings) -> None:
    present = [int(v) for v in values]
    unexpected = sorted(set(present) - set(expected))
    if unexpected and set(present) <= {0, 255} and 255 not in expected:
        out.error("mask_0_255", "label is a 0/255 mask (foreground stored as 255); store the foreground as 1 "
                  f"(e.g. seg // 255). Declared label values: {list(expected)}", path)
    elif unexpected:
        out.error("undeclared_labels", f"label values {unexpected} are not declared in dataset.json (declared: "
                  f"{list(expected)}; found: {present})", path)
    if present == [0]:
        out.warn("empty_label", "label contains only background", path)


def _strip_path(message: str, path: Path) -> str:
    return message.replace(f" {path}", "").replace(str(path), "the file")


# ---- geometry ----------------------------------------------------------------------------------------------------
def _check_geometry(images: list[tuple[Path, tuple[np.ndarray, ImageGeometry]]],
                    label: tuple[np.ndarray, ImageGeometry] | None, label_path: Path | None, tol: Tolerances,
                    out: _Findings) -> None:
    ref_path, (ref_array, ref_geom) = images[0]
    for path, (array, geom) in images[1:]:
        _compare(ref_array.shape[1:], ref_geom, array.shape[1:], geom, tol, out, path,
                 f"channel file {Path(path).name} vs {Path(ref_path).name}")
    if label is not None and label_path is not None:
        _compare(ref_array.shape[1:], ref_geom, label[0].shape[1:], label[1], tol, out, label_path,
                 f"label vs image {Path(ref_path).name}")


def _compare(shape_a: tuple[int, ...], a: ImageGeometry, shape_b: tuple[int, ...], b: ImageGeometry,
             tol: Tolerances, out: _Findings, file: Path, what: str) -> None:
    if tuple(shape_a) != tuple(shape_b):
        out.error("shape_mismatch", f"{what}: shape {tuple(shape_b)} != {tuple(shape_a)}", file)
        return
    sa, sb = np.asarray(a.spacing), np.asarray(b.spacing)
    diff = np.abs(sa - sb)
    if np.any(diff > tol.spacing_rtol * np.maximum(np.abs(sa), np.abs(sb))):
        out.error("spacing_mismatch", f"{what}: spacing {_fmt(sb)} != {_fmt(sa)} (difference {_fmt(diff)}, "
                  f"tolerance {tol.spacing_rtol:g} relative)", file)
    if len(a.origin) == len(b.origin) and a.reader == b.reader and not a.reader.startswith("natural"):
        od = np.abs(np.asarray(a.origin) - np.asarray(b.origin))
        if od.max() > tol.origin_atol_mm:
            out.error("origin_mismatch", f"{what}: origin {_fmt(b.origin)} != {_fmt(a.origin)} (difference "
                      f"{_fmt(od)} mm, tolerance {tol.origin_atol_mm:g} mm)", file)
        dd = np.abs(np.asarray(a.direction) - np.asarray(b.direction))
        if dd.max() > tol.direction_atol:
            out.error("direction_mismatch", f"{what}: direction {_fmt(b.direction)} != {_fmt(a.direction)} "
                      f"(largest difference {dd.max():.3g}, tolerance {tol.direction_atol:g})", file)


def _fmt(values: Any) -> str:
    return "(" + ", ".join(f"{float(v):.6g}" for v in values) + ")"


# ---- the same checks on a case a stage has already read (plan, preprocess) ----------------------------------------
def check_read_case(case: str, images: np.ndarray, geometry: ImageGeometry, image_paths: Sequence[Path | str],
                    label: np.ndarray | None, label_geometry: ImageGeometry | None, label_path: Path | str | None, *,
                    expected_labels: tuple[int, ...] | None, tolerances: Tolerances | None = None
                    ) -> list[Problem]:
    """``verify``'s content checks on arrays a stage has already read: NaN/Inf voxels (also those ITK's NIfTI
    reader turns into 0), label values not declared in dataset.json, label/image geometry beyond the tolerance.

    ``images`` is ``(c, z, y, x)`` as ``autounet.io.read_images`` returns it (channel files already agree with
    each other: the reader checks that); returns the problems found (empty when the case is usable).
    """
    out = _Findings(case, [], [])
    paths = [Path(p) for p in image_paths]
    per_file = len(paths) == images.shape[0]
    for c, path in enumerate(paths):
        part = images[c] if per_file else images
        n_nan, n_inf = (_nonfinite(part, path) if np.issubdtype(part.dtype, np.floating) else (0, 0))
        if n_nan or n_inf:
            out.error("nan_inf", f"image has {n_nan} NaN and {n_inf} infinite voxel(s)", path)
        if not per_file:
            break
    if label is not None and label_path is not None:
        label_path = Path(label_path)
        values = _label_values(label, label_path, out)
        if values is not None and expected_labels is not None:
            _check_label_values(values, expected_labels, label_path, out)
        if label_geometry is not None and paths:
            _compare(images.shape[1:], geometry, label.shape[1:], label_geometry, tolerances or Tolerances(), out,
                     label_path, f"label vs image {paths[0].name}")
    return out.problems


def raise_for_problems(problems: Sequence[Problem], *, dataset: str | None = None) -> None:
    """Raise one ``DatasetError`` line for a case's problems (the first one named, the others counted)."""
    if not problems:
        return
    more = f" (and {len(problems) - 1} more problem(s) in this case)" if len(problems) > 1 else ""
    hint = f"`autounet verify {dataset}` lists every problem" if dataset else "`autounet verify` lists every problem"
    msg = f"{problems[0]}{more}; fix the data ({hint})."
    raise DatasetError(msg)
