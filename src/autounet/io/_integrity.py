"""Detect truncated files that a reader would otherwise fill with zeros silently.

ITK's NIfTI reader accepts a truncated ``.nii``/``.nii.gz`` (the missing voxels become 0), which turns a broken
download into silently wrong training data. The check is cheap: the NIfTI header gives the expected byte count, which
is compared with the file size (``.nii``) or the gzip trailer's uncompressed size (``.nii.gz``); only when the trailer
disagrees (multi-member gzip files) is the stream decompressed to be sure.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

from autounet.errors import ImageIOError

_CHUNK = 1 << 22


def _expected_nifti_bytes(path: Path) -> int | None:
    import nibabel as nib

    try:
        header = nib.load(str(path)).header
        shape = header.get_data_shape()
        n = 1
        for s in shape:
            n *= int(s)
        return int(header.get_data_offset()) + n * header.get_data_dtype().itemsize
    except Exception:  # noqa: BLE001 - not parseable by nibabel: leave the verdict to the reader
        return None


def _gzip_trailer_size(path: Path) -> int:
    with path.open("rb") as f:
        f.seek(-4, 2)
        return struct.unpack("<I", f.read(4))[0]


def _decompressed_size(path: Path) -> int:
    total = 0
    try:
        with gzip.open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                total += len(chunk)
    except (EOFError, zlib.error, OSError) as exc:
        msg = f"{path} is truncated or corrupt ({type(exc).__name__}: {exc})."
        raise ImageIOError(msg) from exc
    return total


def check_complete(path: Path) -> None:
    """Raise ``ImageIOError`` when ``path`` (``.nii``, ``.nii.gz`` or another ``.gz`` file) is truncated."""
    name = path.name.lower()
    if name.endswith((".nii", ".nii.gz")):
        expected = _expected_nifti_bytes(path)
        if expected is None:
            return
        if name.endswith(".nii"):
            size = path.stat().st_size
        elif _gzip_trailer_size(path) == expected % (1 << 32):
            return
        else:
            size = _decompressed_size(path)
        if size < expected:
            msg = f"{path} is truncated: {size} bytes of image data where the header announces {expected}."
            raise ImageIOError(msg)
    elif name.endswith(".gz"):
        _decompressed_size(path)


def nifti_nonfinite(path: Path) -> tuple[int, int]:
    """``(NaN count, infinite count)`` of a float NIfTI file as stored on disk; ``(0, 0)`` for other files.

    ITK's NIfTI reader replaces NaN and infinite voxels with 0 while reading, so checks on the array SimpleITK returns
    cannot see them; this reads the stored values with nibabel.
    """
    import nibabel as nib
    import numpy as np

    if not path.name.lower().endswith((".nii", ".nii.gz")):
        return 0, 0
    try:
        image = nib.load(str(path))
        if image.get_data_dtype().kind != "f":
            return 0, 0
        data = np.asanyarray(image.dataobj)
    except Exception:  # noqa: BLE001 - unreadable by nibabel: the main reader reports it
        return 0, 0
    return int(np.count_nonzero(np.isnan(data))), int(np.count_nonzero(np.isinf(data)))
