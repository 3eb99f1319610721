"""Detect what ITK's NIfTI reader hides: truncated files and NaN/infinite voxels.

ITK's NIfTI reader accepts a truncated ``.nii``/``.nii.gz`` (the missing voxels become 0) and replaces NaN and
infinite voxels with 0. The first would turn a broken download into silently wrong training data; the second hides a
data problem from ``verify``. Both checks parse the NIfTI header themselves (a few hundred bytes):

* completeness compares the announced byte count with the file size (``.nii``) or the gzip trailer's uncompressed
  size (``.nii.gz``); only when the trailer disagrees (multi-member gzip) is the stream decompressed to be sure;
* :func:`nifti_nonfinite` reads the stored float values directly (used by ``verify`` only).
"""

from __future__ import annotations

import gzip
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from autounet.errors import ImageIOError

_CHUNK = 1 << 22
#: NIfTI datatype codes of floating-point voxels
_FLOAT_CODES = {16: "f4", 64: "f8"}


@dataclass(frozen=True)
class _NiftiHeader:
    offset: int
    n_voxels: int
    bitpix: int
    datatype: int
    endian: str

    @property
    def n_bytes(self) -> int:
        return self.offset + self.n_voxels * self.bitpix // 8


def _open(path: Path):  # noqa: ANN202 - a binary file object
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else path.open("rb")


def _parse_header(raw: bytes) -> _NiftiHeader | None:
    for endian in ("<", ">"):
        if len(raw) >= 348 and struct.unpack(f"{endian}i", raw[:4])[0] == 348:  # NIfTI-1
            dims = struct.unpack(f"{endian}8h", raw[40:56])
            datatype, bitpix = struct.unpack(f"{endian}2h", raw[70:74])
            offset = int(struct.unpack(f"{endian}f", raw[108:112])[0])
            break
        if len(raw) >= 540 and struct.unpack(f"{endian}i", raw[:4])[0] == 540:  # NIfTI-2
            datatype, bitpix = struct.unpack(f"{endian}2h", raw[12:16])
            dims = struct.unpack(f"{endian}8q", raw[16:80])
            offset = struct.unpack(f"{endian}q", raw[168:176])[0]
            break
    else:
        return None
    if not 1 <= dims[0] <= 7 or bitpix <= 0:
        return None
    n = 1
    for d in dims[1: dims[0] + 1]:
        n *= max(int(d), 1)
    return _NiftiHeader(offset=max(offset, 348), n_voxels=n, bitpix=bitpix, datatype=datatype, endian=endian)


def _read_header(path: Path) -> _NiftiHeader | None:
    try:
        with _open(path) as f:
            return _parse_header(f.read(540))
    except (OSError, EOFError, zlib.error, struct.error):
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
        header = _read_header(path)
        if header is None:
            return  # not parseable here: the reader gives its own error
        expected = header.n_bytes
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
    """``(NaN count, infinite count)`` of a float NIfTI file as stored on disk; ``(0, 0)`` for other files."""
    if not path.name.lower().endswith((".nii", ".nii.gz")):
        return 0, 0
    header = _read_header(path)
    if header is None or header.datatype not in _FLOAT_CODES:
        return 0, 0
    try:
        with _open(path) as f:
            raw = f.read(header.n_bytes)
    except (OSError, EOFError, zlib.error):
        return 0, 0
    data = np.frombuffer(raw, dtype=header.endian + _FLOAT_CODES[header.datatype], offset=header.offset,
                         count=header.n_voxels)
    n_nan = int(np.count_nonzero(np.isnan(data)))
    return n_nan, int(np.count_nonzero(~np.isfinite(data))) - n_nan
