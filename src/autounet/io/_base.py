"""Reader/writer base class, the registry keyed by name and file ending, and shared helpers."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import ClassVar, TypeVar

import numpy as np

from autounet.errors import ImageIOError
from autounet.io.geometry import ImageGeometry
from autounet.registry import Registry

PathLike = str | os.PathLike[str]


class ReaderWriter:
    """One image format family. Subclasses implement ``_read`` (one file) and ``_write`` (one array).

    ``read_images`` stacks channels (each file may itself hold several, e.g. RGB or 4D) and checks that they share
    shape and spacing; ``read_segmentation`` reads one file as ``(1, a0, a1, a2)``.
    """

    name: ClassVar[str] = ""
    endings: ClassVar[tuple[str, ...]] = ()
    #: whether this reader accepts folders (a DICOM series) rather than files
    reads_folders: ClassVar[bool] = False
    #: whether this reader can write (DICOM series input cannot be written back)
    can_write: ClassVar[bool] = True

    # ---- to implement ------------------------------------------------------------------------------------------
    def _read(self, path: Path, *, segmentation: bool) -> tuple[np.ndarray, ImageGeometry]:
        """Read one file as ``(c, a0, a1, a2)`` (any dtype) plus its geometry."""
        raise NotImplementedError

    def _write(self, array: np.ndarray, path: Path, geometry: ImageGeometry) -> None:
        """Write ``array`` shaped ``(c, a0, a1, a2)`` to ``path`` (a temporary name with the final ending)."""
        raise NotImplementedError

    def probe(self, path: Path) -> bool:
        """Cheap check that this reader understands ``path`` (header only where possible)."""
        try:
            self._read(path, segmentation=False)
        except Exception:  # noqa: BLE001 - a probe answers yes/no
            return False
        return True

    # ---- shared behaviour --------------------------------------------------------------------------------------
    def read_images(self, paths: Sequence[PathLike]) -> tuple[np.ndarray, ImageGeometry]:
        """Read channel files into one float32 ``(c, a0, a1, a2)`` array with the first file's geometry."""
        if not paths:
            msg = "read_images needs at least one file."
            raise ImageIOError(msg)
        arrays, geometries = [], []
        for p in paths:
            array, geometry = self.read_one(p, segmentation=False)
            arrays.append(array)
            geometries.append(geometry)
        _check_channels_agree(paths, arrays, geometries)
        return np.concatenate(arrays, axis=0, dtype=np.float32, casting="unsafe"), geometries[0]

    def read_segmentation(self, path: PathLike) -> tuple[np.ndarray, ImageGeometry]:
        """Read a label map as ``(1, a0, a1, a2)`` in its stored integer dtype (float32 for float files)."""
        array, geometry = self.read_one(path, segmentation=True)
        if array.shape[0] != 1:
            msg = (f"Cannot read segmentation {path}: it has {array.shape[0]} channels/components; a label map "
                   "must have exactly one.")
            raise ImageIOError(msg)
        return array, geometry

    def read_one(self, path: PathLike, *, segmentation: bool) -> tuple[np.ndarray, ImageGeometry]:
        """Read one file, turning any failure into an ``ImageIOError`` naming the file."""
        path = Path(path)
        check_exists(path, folder=self.reads_folders)
        try:
            return self._read(path, segmentation=segmentation)
        except ImageIOError:
            raise
        except Exception as exc:  # noqa: BLE001 - library errors become one clear message
            msg = f"Cannot read {path} with the {self.name} reader: {describe(exc)}"
            raise ImageIOError(msg) from exc

    def write(self, array: np.ndarray, path: PathLike, geometry: ImageGeometry) -> None:
        """Write ``(c, a0, a1, a2)`` atomically (with any side-car files)."""
        path = Path(path)
        if not self.can_write:
            msg = f"The {self.name} reader cannot write {path}; write NIfTI (.nii.gz) or another file format."
            raise ImageIOError(msg)
        try:
            with atomic_files(path) as tmp:
                self._write(array, tmp, geometry)
        except ImageIOError:
            raise
        except Exception as exc:  # noqa: BLE001
            msg = f"Cannot write {path} with the {self.name} writer: {describe(exc)}"
            raise ImageIOError(msg) from exc


READERS: Registry[ReaderWriter] = Registry("image reader/writer")

_RW = TypeVar("_RW", bound=type[ReaderWriter])


def register(*aliases: str) -> Callable[[_RW], _RW]:
    """Class decorator: register one instance of the class under its ``name`` (and the given aliases)."""

    def decorator(cls: _RW) -> _RW:
        READERS.add(cls.name, cls(), aliases=aliases)
        return cls

    return decorator


def describe(exc: BaseException) -> str:
    """A one-line description of a third-party exception (SimpleITK messages span many lines)."""
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    interesting = [ln for ln in lines if "error" in ln.lower() or "cannot" in ln.lower() or "unable" in ln.lower()]
    text = (interesting or lines or [type(exc).__name__])[-1]
    text = re.sub(r"^.*?ITK ERROR: \w+\(0x[0-9a-f]+\):\s*", "", text)
    if "):" in text and text.lstrip().startswith("/"):
        text = text.split("):", 1)[1].strip()
    if "Unable to determine ImageIO" in text or "not a valid" in text.lower():
        text = "not a readable image (the file is corrupt, truncated or has the wrong ending)"
    if len(text) > 300:
        text = text[:297] + "..."
    return f"{type(exc).__name__}: {text}"


def check_exists(path: Path, *, folder: bool = False) -> None:
    """``ImageIOError`` when ``path`` is missing, or a folder where a file is expected (and vice versa)."""
    if not path.exists():
        msg = f"Image file not found: {path}"
        raise ImageIOError(msg)
    if folder and not path.is_dir():
        msg = f"Expected a folder (DICOM series) but {path} is a file."
        raise ImageIOError(msg)
    if not folder and path.is_dir():
        msg = f"Expected an image file but {path} is a folder (use the dicom_series reader for DICOM folders)."
        raise ImageIOError(msg)


def _check_channels_agree(paths: Sequence[PathLike], arrays: list[np.ndarray],
                          geometries: list[ImageGeometry]) -> None:
    first_shape, first_spacing = arrays[0].shape[1:], geometries[0].spacing
    for p, a, g in zip(paths[1:], arrays[1:], geometries[1:]):
        if a.shape[1:] != first_shape:
            msg = (f"Channel files disagree in shape: {paths[0]} is {tuple(first_shape)} but {p} is "
                   f"{tuple(a.shape[1:])}.")
            raise ImageIOError(msg)
        if not np.allclose(g.spacing, first_spacing, rtol=1e-5, atol=1e-6):
            msg = f"Channel files disagree in spacing: {paths[0]} has {first_spacing} but {p} has {g.spacing}."
            raise ImageIOError(msg)


@contextlib.contextmanager
def atomic_files(target: Path) -> Iterator[Path]:
    """Yield a path with ``target``'s name inside a fresh temporary folder beside it.

    On success every file the writer created there (the image plus side-cars such as ``.raw`` data files or spacing
    JSON) is moved next to ``target``, the main file last; on error the folder is removed.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        tmp = tmp_dir / target.name
        yield tmp
        if not tmp.exists():
            msg = f"The writer produced no file for {target}."
            raise ImageIOError(msg)
        _check_written(tmp, target)
        for produced in sorted(tmp_dir.iterdir(), key=lambda f: f.name == target.name):
            os.replace(produced, target.parent / produced.name)
    finally:
        shutil.rmtree(tmp_dir, ignore_errors=True)


def _check_written(tmp: Path, target: Path) -> None:
    """Refuse a written file that is empty or truncated (some writers ignore a full disk and report success)."""
    from autounet.io._integrity import check_complete

    try:
        if tmp.is_file() and tmp.stat().st_size == 0:
            raise ImageIOError("the written file is empty")
        if tmp.is_file():
            check_complete(tmp)
    except ImageIOError as exc:
        try:
            free = f"{shutil.disk_usage(target.parent).free} bytes free"
        except OSError:
            free = "free space unknown"
        msg = (f"Cannot write {target}: the written file is incomplete ({free}; is the disk full?). Free space and "
               "run the same command again.")
        raise ImageIOError(msg) from exc


def label_dtype(seg: np.ndarray) -> np.dtype:
    """The smallest integer dtype holding ``seg``: uint8, uint16 or uint32 (int16/int32 with negative values)."""
    if seg.size == 0:
        return np.dtype(np.uint8)
    lo, hi = float(seg.min()), float(seg.max())
    if lo < 0:
        return np.dtype(np.int16 if lo >= -32768 and hi <= 32767 else np.int32)
    if hi <= 255:
        return np.dtype(np.uint8)
    return np.dtype(np.uint16 if hi <= 65535 else np.uint32)
