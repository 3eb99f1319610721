"""3D TIFF stacks with the reference's spacing side-car JSON (``{"spacing": [s0, s1, s2]}``).

The side-car of image ``CASE_0000.tif`` is ``CASE.json``; that of a segmentation ``CASE.tif`` is ``CASE.json``.
Without a side-car the spacing is (1, 1, 1) and a warning is logged. The writer writes both files.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import ClassVar

import numpy as np
import tifffile

from autounet._log import get_logger
from autounet.errors import ImageIOError
from autounet.io._base import ReaderWriter, register
from autounet.io.geometry import ImageGeometry

_log = get_logger(__name__)
_CHANNEL = re.compile(r"_\d{4}$")


def sidecar_path(path: Path, *, segmentation: bool) -> Path:
    """Where the spacing JSON of ``path`` lives (the channel suffix ``_XXXX`` is dropped for images)."""
    stem = path.name[: -len(path.suffix)]
    if not segmentation:
        stem = _CHANNEL.sub("", stem)
    return path.with_name(stem + ".json")


def _read_spacing(path: Path, *, segmentation: bool) -> tuple[float, float, float]:
    side = sidecar_path(path, segmentation=segmentation)
    if not side.is_file():
        _log.warning("No spacing file %s for %s; assuming spacing (1, 1, 1).", side.name, path)
        return (1.0, 1.0, 1.0)
    try:
        spacing = json.loads(side.read_text(encoding="utf-8"))["spacing"]
        values = tuple(float(s) for s in spacing)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        msg = f"Spacing file {side} (for {path.name}) must be JSON like {{\"spacing\": [s0, s1, s2]}}: {exc}"
        raise ImageIOError(msg) from exc
    if len(values) != 3 or min(values) <= 0:
        msg = f"Spacing file {side} (for {path.name}) must hold 3 positive values, got {spacing}."
        raise ImageIOError(msg)
    return values


@register("Tiff3DIO")
class Tiff3DIO(ReaderWriter):
    """3D TIFF stacks (tifffile) with the spacing in a side-car JSON."""

    name: ClassVar[str] = "tiff3d"
    endings: ClassVar[tuple[str, ...]] = (".tif", ".tiff")

    def _read(self, path: Path, *, segmentation: bool) -> tuple[np.ndarray, ImageGeometry]:
        data = np.asarray(tifffile.imread(str(path)))
        if data.ndim != 3:
            msg = f"Cannot read {path} as a 3D TIFF: it has {data.ndim} dimensions {data.shape}."
            raise ImageIOError(msg)
        spacing = _read_spacing(path, segmentation=segmentation)
        return data[None], ImageGeometry(spacing=spacing, reader=self.name)

    def _write(self, array: np.ndarray, path: Path, geometry: ImageGeometry) -> None:
        if array.shape[0] != 1:
            msg = f"The tiff3d writer writes one channel per file, got {array.shape[0]}."
            raise ImageIOError(msg)
        tifffile.imwrite(str(path), array[0], compression="zlib")
        side = path.with_name(path.name[: -len(path.suffix)] + ".json")
        side.write_text(json.dumps({"spacing": list(geometry.spacing)}) + "\n", encoding="utf-8")

    def probe(self, path: Path) -> bool:
        try:
            with tifffile.TiffFile(str(path)) as tif:
                shape = tif.series[0].shape
        except Exception:  # noqa: BLE001 - a probe answers yes/no
            return False
        return len(shape) == 3
