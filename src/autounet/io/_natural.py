"""2D natural images (PNG, BMP, 2D TIFF, JPEG): ``(c, 1, H, W)`` with the dummy spacing ``(999, 1, 1)``."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import tifffile
from PIL import Image

from autounet.errors import ImageIOError
from autounet.io._base import ReaderWriter, register
from autounet.io.geometry import ImageGeometry

NATURAL_SPACING = (999.0, 1.0, 1.0)
_TIFF = (".tif", ".tiff")


def _read_pixels(path: Path) -> np.ndarray:
    if path.name.lower().endswith(_TIFF):
        return np.asarray(tifffile.imread(str(path)))
    with Image.open(path) as image:
        image.load()
        return np.asarray(image)


@register("NaturalImage2DIO")
class NaturalImage2DIO(ReaderWriter):
    """2D natural images. Grey -> 1 channel; RGB/RGBA (last axis 3 or 4) -> 3/4 channels."""

    name: ClassVar[str] = "natural2d"
    endings: ClassVar[tuple[str, ...]] = (".png", ".bmp", ".tif", ".tiff", ".jpg", ".jpeg")

    def _read(self, path: Path, *, segmentation: bool) -> tuple[np.ndarray, ImageGeometry]:
        pixels = _read_pixels(path)
        if pixels.ndim == 2:
            array = pixels[None, None]
        elif pixels.ndim == 3 and pixels.shape[-1] in (3, 4):
            array = pixels.transpose(2, 0, 1)[:, None]
        else:
            msg = (f"Cannot read {path} as a 2D natural image: shape {pixels.shape}; expected (H, W) or (H, W, 3|4). "
                   "3D TIFF stacks are read by the tiff3d reader.")
            raise ImageIOError(msg)
        return array, ImageGeometry(spacing=NATURAL_SPACING, origin=(0.0, 0.0), direction=(1.0, 0.0, 0.0, 1.0),
                                    is_2d=True, reader=self.name)

    def _write(self, array: np.ndarray, path: Path, geometry: ImageGeometry) -> None:
        if array.shape[1] != 1:
            msg = f"A natural 2D image must be shaped (c, 1, H, W), got {array.shape}."
            raise ImageIOError(msg)
        pixels = array[:, 0].transpose(1, 2, 0) if array.shape[0] > 1 else array[0, 0]
        if path.name.lower().endswith(_TIFF):
            tifffile.imwrite(str(path), pixels, compression="zlib")
        elif path.name.lower().endswith((".jpg", ".jpeg")):
            msg = f"Refusing to write {path}: JPEG is lossy; use .png."
            raise ImageIOError(msg)
        else:
            Image.fromarray(pixels).save(path)

    def probe(self, path: Path) -> bool:
        try:
            if path.name.lower().endswith(_TIFF):
                with tifffile.TiffFile(str(path)) as tif:
                    shape = tif.series[0].shape
                return len(shape) == 2 or (len(shape) == 3 and shape[-1] in (3, 4))
            with Image.open(path) as image:
                return image.size[0] > 0
        except Exception:  # noqa: BLE001 - a probe answers yes/no
            return False
