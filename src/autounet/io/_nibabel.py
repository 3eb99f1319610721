"""nibabel-based NIfTI readers (the reference's ``NibabelIO`` and ``NibabelIOWithReorient``).

nibabel is imported when a file is first read or written through these readers (it takes about 0.2 s, which
every command would otherwise pay at start-up).
"""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, ClassVar

import numpy as np

from autounet.errors import ImageIOError
from autounet.io._base import ReaderWriter, register
from autounet.io._integrity import check_complete
from autounet.io.geometry import ImageGeometry, as_spacing

if TYPE_CHECKING:
    import nibabel as nib

_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])


def itk_geometry_from_affine(affine: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...], tuple[float, ...]]:
    """ITK spacing, origin and direction (LPS) of a NIfTI (RAS) affine; spacing in ITK (x, y, z) order."""
    lin = _RAS_TO_LPS @ affine[:3, :3]
    spacing = np.linalg.norm(lin, axis=0)
    direction = lin / np.where(spacing > 0, spacing, 1.0)
    origin = _RAS_TO_LPS @ affine[:3, 3]
    return tuple(spacing.tolist()), tuple(origin.tolist()), tuple(direction.ravel().tolist())


def _as_channels(data: np.ndarray, path: Path) -> np.ndarray:
    """nibabel (x, y, z[, c]) data -> channel-first (c, z, y, x) in SimpleITK's axis order."""
    if data.ndim == 3:
        return data.transpose(2, 1, 0)[None]
    if data.ndim == 4:
        return data.transpose(3, 2, 1, 0)
    msg = f"Cannot read {path} with nibabel: {data.ndim}D data; only 3D (or 4D = channels) is supported."
    raise ImageIOError(msg)


def _nibabel() -> ModuleType:
    import nibabel

    return nibabel


def _load(path: Path) -> nib.Nifti1Image:
    nib = _nibabel()
    check_complete(path)
    image = nib.load(str(path))
    if not isinstance(image, (nib.Nifti1Image, nib.Nifti2Image)):
        msg = f"Cannot read {path} with nibabel: not a NIfTI file ({type(image).__name__})."
        raise ImageIOError(msg)
    return image


def _geometry(image: nib.Nifti1Image, *, reader: str, extras: dict) -> ImageGeometry:
    spacing, origin, direction = itk_geometry_from_affine(image.affine)
    zooms = image.header.get_zooms()[:3]
    return ImageGeometry(spacing=as_spacing(zooms[::-1]), origin=origin, direction=direction,
                         reader=reader, extras=extras)


def _to_nifti(array: np.ndarray, affine: np.ndarray) -> nib.Nifti1Image:
    data = array[0].transpose(2, 1, 0) if array.shape[0] == 1 else array.transpose(3, 2, 1, 0)
    image = _nibabel().Nifti1Image(np.ascontiguousarray(data), affine)
    image.header.set_data_dtype(data.dtype)
    return image


@register("NibabelIO")
class NibabelIO(ReaderWriter):
    """NIfTI through nibabel; the array is transposed to SimpleITK's axis order, the affine kept for writing."""

    name: ClassVar[str] = "nibabel"
    endings: ClassVar[tuple[str, ...]] = (".nii", ".nii.gz")

    def _read(self, path: Path, *, segmentation: bool) -> tuple[np.ndarray, ImageGeometry]:
        image = _load(path)
        data = np.asanyarray(image.dataobj)
        return _as_channels(data, path), _geometry(image, reader=self.name,
                                                   extras={"affine": image.affine.tolist()})

    def _write(self, array: np.ndarray, path: Path, geometry: ImageGeometry) -> None:
        _nibabel().save(_to_nifti(array, _affine_for(geometry)), str(path))

    def probe(self, path: Path) -> bool:
        try:
            image = _load(path)
        except Exception:  # noqa: BLE001 - a probe answers yes/no
            return False
        return len(image.shape) in (3, 4)


@register("NibabelIOWithReorient")
class NibabelReorientIO(NibabelIO):
    """Like ``nibabel`` but reorients to the closest canonical (RAS) orientation, and back on writing."""

    name: ClassVar[str] = "nibabel_reorient"

    def _read(self, path: Path, *, segmentation: bool) -> tuple[np.ndarray, ImageGeometry]:
        original = _load(path)
        image = _nibabel().as_closest_canonical(original)
        data = np.asanyarray(image.dataobj)
        extras = {"affine": image.affine.tolist(), "original_affine": original.affine.tolist()}
        return _as_channels(data, path), _geometry(image, reader=self.name, extras=extras)

    def _write(self, array: np.ndarray, path: Path, geometry: ImageGeometry) -> None:
        image = _to_nifti(array, _affine_for(geometry))
        original = geometry.extras.get("original_affine")
        if original is not None:
            from nibabel.orientations import io_orientation

            image = image.as_reoriented(io_orientation(np.asarray(original)))
        _nibabel().save(image, str(path))


def _affine_for(geometry: ImageGeometry) -> np.ndarray:
    """The stored affine, or one built from spacing/origin/direction (geometry from another reader)."""
    if "affine" in geometry.extras:
        return np.asarray(geometry.extras["affine"], dtype=float)
    if geometry.is_2d or len(geometry.origin) != 3:
        msg = "nibabel can only write 3D geometry; use the simpleitk writer for 2D files."
        raise ImageIOError(msg)
    direction = np.asarray(geometry.direction).reshape(3, 3)
    lin = _RAS_TO_LPS @ direction @ np.diag(geometry.itk_spacing())
    affine = np.eye(4)
    affine[:3, :3] = lin
    affine[:3, 3] = _RAS_TO_LPS @ np.asarray(geometry.origin)
    return affine
