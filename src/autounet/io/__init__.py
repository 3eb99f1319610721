"""Image input/output with geometry.

Arrays are channel-first ``(c, a0, a1, a2)`` in SimpleITK's axis order (``(z, y, x)``); 2D images are
``(c, 1, H, W)`` with a dummy first spacing (999 for natural images, ``999 * max(spacing)`` for 2D ITK files);
a 4D file holds several channels. Readers are registered by name (``simpleitk``, ``nibabel``, ``natural2d``,
``tiff3d``, ``dicom_series``, ``dicom_seg``, ``simpleitk_reorient``, ``nibabel_reorient``) with the reference's class
names (``SimpleITKIO``, ``NibabelIO``, ``NaturalImage2DIO``, ``Tiff3DIO``, ...) as aliases.

Example:
    >>> images, geometry = read_images(["case_0000.nii.gz", "case_0001.nii.gz"])  # doctest: +SKIP
    >>> write_segmentation(seg, "case.nii.gz", geometry)                         # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from autounet._log import get_logger
from autounet.errors import ImageIOError
from autounet.io import _natural, _nibabel, _sitk, _tiff, dicom_seg  # noqa: F401 - registers the readers
from autounet.io._base import READERS, PathLike, ReaderWriter, label_dtype
from autounet.io.geometry import ImageGeometry

__all__ = [
    "READERS",
    "ImageGeometry",
    "ReaderWriter",
    "file_ending_of",
    "get_reader",
    "read_images",
    "read_segmentation",
    "reader_for",
    "reader_names",
    "resolve_reader_name",
    "segmentation_ending",
    "write_image",
    "write_segmentation",
]

_log = get_logger(__name__)

#: automatic selection order (the reference's), then the additions
AUTO_ORDER = ("natural2d", "simpleitk", "tiff3d", "nibabel", "nibabel_reorient")
#: ``.nii`` goes to nibabel first, as in the reference; SimpleITK is the fallback (2D NIfTI)
_PREFERENCE = {".nii": ("nibabel", "simpleitk"), ".dcm": ("dicom_seg",)}


def reader_names() -> list[str]:
    """Registered reader names."""
    return READERS.names()


def get_reader(name: str) -> ReaderWriter:
    """The reader/writer registered as ``name`` or a reference alias (``ConfigError`` with suggestions)."""
    return READERS.get(name)


def resolve_reader_name(name: str) -> str:
    """Canonical registry name for ``name`` or an alias (``SimpleITKIO`` -> ``simpleitk``)."""
    return READERS.canonical(name)


def file_ending_of(path: PathLike) -> str:
    """The file ending that selects a reader: ``.nii.gz``, ``.seg.nrrd``, ``.png``...; ``""`` for folders."""
    path = Path(path)
    if path.is_dir():
        return ""
    name = path.name.lower()
    known = sorted({e for r in READERS.names() for e in READERS.get(r).endings}, key=len, reverse=True)
    for ending in known:
        if name.endswith(ending):
            return ending
    return "".join(path.suffixes[-2:]) if path.suffix == ".gz" else path.suffix


#: what DICOM data (series folders, ``.dcm`` files) is segmented into: predictions of DICOM series are written in
#: it, and a DICOM dataset's ground truth is stored in it (``preprocessed/<ds>/gt_segmentations``)
DICOM_SEGMENTATION_ENDING = ".nii.gz"
_DICOM_DATASET_ENDINGS = (".dcm", ".dicom", ".ima")


def segmentation_ending(file_ending: str) -> str:
    """The ending of the reference and predicted segmentations of a dataset whose files end in ``file_ending``: the
    dataset's own, except for DICOM (``.dcm`` files or series folders), whose label maps are ``.nii.gz`` files."""
    return DICOM_SEGMENTATION_ENDING if file_ending.lower() in ("", *_DICOM_DATASET_ENDINGS) else file_ending


def _candidates(file_ending: str) -> list[str]:
    ending = file_ending.lower()
    if ending == "":
        return ["dicom_series"]
    if ending in _PREFERENCE:
        return list(_PREFERENCE[ending])
    return [n for n in AUTO_ORDER if any(ending.endswith(e) for e in READERS.get(n).endings)]


def reader_for(file_ending: str, example: PathLike | None = None) -> str:
    """Choose a reader name for ``file_ending`` as the reference does.

    Candidates are walked in the fixed order natural2d, simpleitk, tiff3d, nibabel. Without ``example`` the first
    candidate wins; with one, the first whose (cheap, header-only where possible) probe accepts ``example``. A folder
    ``example`` selects ``dicom_series``.

    Raises:
        ImageIOError: no reader handles the ending (or none can read ``example``).
    """
    if example is not None and Path(example).is_dir():
        return "dicom_series"
    names = _candidates(file_ending)
    if not names:
        endings = sorted({e for r in READERS.names() for e in READERS.get(r).endings})
        msg = f"No reader for file ending {file_ending!r}. Supported endings: {', '.join(endings)}."
        raise ImageIOError(msg)
    if example is None or len(names) == 1:
        return names[0]
    for name in names:
        if READERS.get(name).probe(Path(example)):
            return name
    msg = f"None of the readers for {file_ending!r} ({', '.join(names)}) can read {example}."
    raise ImageIOError(msg)


def _auto_read(paths: Sequence[PathLike], *, segmentation: bool) -> tuple[np.ndarray, ImageGeometry]:
    """Try the candidate readers of the first file's ending in order; re-raise the first error if all fail."""
    first = Path(paths[0])
    names = ["dicom_series"] if first.is_dir() else _candidates(file_ending_of(first))
    if not names:
        reader_for(file_ending_of(first))  # raises the "no reader" error
    errors: list[ImageIOError] = []
    for name in names:
        reader = READERS.get(name)
        try:
            if segmentation:
                return reader.read_segmentation(paths[0])
            return reader.read_images(paths)
        except ImageIOError as exc:
            errors.append(exc)
            if not first.exists():
                break
    raise errors[0]


def read_images(paths: Sequence[PathLike] | PathLike, *, reader: str | None = None
                ) -> tuple[np.ndarray, ImageGeometry]:
    """Read the channel files of one case into float32 ``(c, a0, a1, a2)`` plus the first file's geometry.

    Args:
        paths: one path per channel file (or a single path; a folder is read as a DICOM series).
        reader: a reader name or reference alias; ``None`` chooses by file ending (falling back to the next
            candidate when a reader fails, as the reference's selection does).

    Raises:
        ImageIOError: a file is missing, unreadable, corrupt or truncated, or channels disagree in shape/spacing.
    """
    paths = [paths] if isinstance(paths, (str, os.PathLike)) else list(paths)
    if reader is not None:
        return READERS.get(reader).read_images(paths)
    return _auto_read(paths, segmentation=False)


def read_segmentation(path: PathLike, *, reader: str | None = None) -> tuple[np.ndarray, ImageGeometry]:
    """Read a label map as ``(1, a0, a1, a2)`` in its stored dtype (integers stay integers)."""
    if reader is not None:
        return READERS.get(reader).read_segmentation(path)
    return _auto_read([path], segmentation=True)


def _writer_for(path: Path, geometry: ImageGeometry) -> ReaderWriter:
    """The geometry's own reader when it writes ``path``'s ending (keeps e.g. a nibabel affine), else by ending."""
    ending = file_ending_of(path) if not path.is_dir() else ""
    own = READERS.get(geometry.reader) if geometry.reader in READERS else None
    if own is not None and own.can_write and any(ending.endswith(e) for e in own.endings):
        return own
    names = [n for n in _candidates(ending) if READERS.get(n).can_write]
    if not geometry.is_2d:  # natural images are 2D only
        names = [n for n in names if n != "natural2d"]
    if not names:
        msg = f"Cannot write {path}: no writer for file ending {ending!r}."
        raise ImageIOError(msg)
    return READERS.get(names[0])


def _as_channel_first(array: np.ndarray, geometry: ImageGeometry, *, what: str) -> np.ndarray:
    array = np.asarray(array)
    if array.ndim == 3:
        array = array[None] if not (geometry.is_2d and array.shape[0] == 1) else array[None]
    if array.ndim == 2 and geometry.is_2d:
        array = array[None, None]
    if array.ndim != 4:
        msg = f"{what} must be (z, y, x) or (c, z, y, x) (2D: (1, H, W)), got shape {array.shape}."
        raise ImageIOError(msg)
    return array


def write_segmentation(seg: np.ndarray, path: PathLike, geometry: ImageGeometry) -> None:
    """Write a label map with the geometry of the image it came from, atomically.

    ``seg`` is ``(z, y, x)`` or ``(1, z, y, x)`` (2D: ``(1, H, W)`` or ``(1, 1, H, W)``); it is stored as the smallest
    integer type holding its values (uint8/uint16/...). The file type follows ``path``'s ending; a geometry from
    another reader is applied as spacing, origin and direction.
    """
    path = Path(path)
    array = _as_channel_first(seg, geometry, what="A segmentation")
    if array.shape[0] != 1:
        msg = f"A segmentation must have one channel, got shape {array.shape} for {path}."
        raise ImageIOError(msg)
    _writer_for(path, geometry).write(array.astype(label_dtype(array), copy=False), path, geometry)


def write_image(image: np.ndarray, path: PathLike, geometry: ImageGeometry) -> None:
    """Write an intensity image or probability map (dtype kept; several channels -> 4D file), atomically."""
    path = Path(path)
    array = _as_channel_first(image, geometry, what="An image")
    _writer_for(path, geometry).write(array, path, geometry)
