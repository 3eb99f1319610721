"""SimpleITK-based readers: NIfTI, NRRD, MetaImage, GIPL files, the RAS-reorienting variant and DICOM series."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import SimpleITK as sitk

from autounet.errors import ImageIOError
from autounet.io._base import ReaderWriter, register
from autounet.io._integrity import check_complete
from autounet.io.geometry import ImageGeometry

_2D_DUMMY_FACTOR = 999.0


def array_and_geometry(image: sitk.Image, *, reader: str, path: Path) -> tuple[np.ndarray, ImageGeometry]:
    """Channel-first array ``(c, a0, a1, a2)`` and geometry of a 2D, 3D or 4D (channels) ITK image."""
    dim = image.GetDimension()
    comps = image.GetNumberOfComponentsPerPixel()
    array = sitk.GetArrayFromImage(image)
    spacing = tuple(abs(s) for s in image.GetSpacing())
    origin, direction = image.GetOrigin(), image.GetDirection()
    if comps > 1:  # vector pixels: components become channels
        array = np.moveaxis(array, -1, 0)
    else:
        array = array[None]
    if dim == 2:
        array = array[:, None]
        geom = ImageGeometry(spacing=(_2D_DUMMY_FACTOR * max(spacing), spacing[1], spacing[0]), origin=origin,
                             direction=direction, is_2d=True, reader=reader)
    elif dim == 3:
        geom = ImageGeometry(spacing=spacing[::-1], origin=origin, direction=direction, reader=reader)
    elif dim == 4 and comps == 1:  # 4D file = several channels in one file, as the reference reads it
        array = array[0]
        d = np.asarray(direction).reshape(4, 4)[:3, :3]
        geom = ImageGeometry(spacing=spacing[:3][::-1], origin=origin[:3],
                             direction=tuple(float(v) for v in d.ravel()), reader=reader,
                             extras={"channels_in_file": int(array.shape[0])})
    else:
        msg = f"Cannot read {path}: {dim}D images with {comps} component(s) per pixel are not supported."
        raise ImageIOError(msg)
    return array, geom


def image_from_array(array: np.ndarray, geometry: ImageGeometry) -> sitk.Image:
    """An ITK image from ``(c, a0, a1, a2)``: 3D for one channel (2D if the source was 2D), 4D for several."""
    c = array.shape[0]
    if geometry.is_2d:
        if array.shape[1] != 1:
            msg = f"A 2D geometry needs arrays shaped (c, 1, H, W), got {array.shape}."
            raise ImageIOError(msg)
        if c != 1:
            msg = f"Writing several channels of a 2D image is not supported (got {c} channels)."
            raise ImageIOError(msg)
        image = sitk.GetImageFromArray(array[0, 0], isVector=False)
    elif c == 1:
        image = sitk.GetImageFromArray(array[0], isVector=False)
    else:
        image = sitk.GetImageFromArray(array, isVector=False)  # (c, z, y, x) -> 4D image, channels on the 4th axis
    if image.GetDimension() == 4:
        d = np.eye(4)
        d[:3, :3] = np.asarray(geometry.direction).reshape(3, 3)
        image.SetSpacing((*geometry.itk_spacing(), 1.0))
        image.SetOrigin((*geometry.origin, 0.0))
        image.SetDirection(tuple(d.ravel()))
        return image
    if len(geometry.origin) != image.GetDimension():
        msg = (f"Geometry of a {len(geometry.origin)}D file cannot be applied to a {image.GetDimension()}D array "
               f"of shape {array.shape}.")
        raise ImageIOError(msg)
    image.SetSpacing(geometry.itk_spacing())
    image.SetOrigin(geometry.origin)
    image.SetDirection(geometry.direction)
    return image


@register("SimpleITKIO")
class SimpleITKIO(ReaderWriter):
    """NIfTI, NRRD (incl. ``.seg.nrrd`` label maps), MetaImage and GIPL through SimpleITK."""

    name: ClassVar[str] = "simpleitk"
    endings: ClassVar[tuple[str, ...]] = (".nii.gz", ".nii", ".nrrd", ".seg.nrrd", ".nhdr", ".mha", ".mhd", ".gipl",
                                          ".gipl.gz")

    def _read(self, path: Path, *, segmentation: bool) -> tuple[np.ndarray, ImageGeometry]:
        check_complete(path)
        return array_and_geometry(sitk.ReadImage(str(path)), reader=self.name, path=path)

    def _write(self, array: np.ndarray, path: Path, geometry: ImageGeometry) -> None:
        sitk.WriteImage(image_from_array(array, geometry), str(path), True)

    def probe(self, path: Path) -> bool:
        reader = sitk.ImageFileReader()
        reader.SetFileName(str(path))
        try:
            reader.ReadImageInformation()
        except RuntimeError:
            return False
        return reader.GetDimension() in (2, 3, 4)


@register("SimpleITKIOWithReorient")
class SimpleITKReorientIO(SimpleITKIO):
    """Like ``simpleitk`` but reorients to RAS on reading and back to the file's orientation on writing."""

    name: ClassVar[str] = "simpleitk_reorient"

    def _read(self, path: Path, *, segmentation: bool) -> tuple[np.ndarray, ImageGeometry]:
        check_complete(path)
        image = sitk.ReadImage(str(path))
        original = sitk.DICOMOrientImageFilter.GetOrientationFromDirectionCosines(image.GetDirection())
        if image.GetDimension() == 3:
            image = sitk.DICOMOrient(image, "RAS")
        array, geom = array_and_geometry(image, reader=self.name, path=path)
        return array, geom.replace(extras={**geom.extras, "original_orientation": original})

    def _write(self, array: np.ndarray, path: Path, geometry: ImageGeometry) -> None:
        image = image_from_array(array, geometry)
        original = geometry.extras.get("original_orientation")
        if original and image.GetDimension() == 3:
            image = sitk.DICOMOrient(image, str(original))
        sitk.WriteImage(image, str(path), True)


@register("DicomSeriesIO")
class DicomSeriesIO(ReaderWriter):
    """A folder holding one DICOM series, read with its geometry (input only; write NIfTI instead)."""

    name: ClassVar[str] = "dicom_series"
    endings: ClassVar[tuple[str, ...]] = ()
    reads_folders: ClassVar[bool] = True
    can_write: ClassVar[bool] = False

    def _read(self, path: Path, *, segmentation: bool) -> tuple[np.ndarray, ImageGeometry]:
        series = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(path))
        if not series:
            msg = f"Cannot read DICOM folder {path}: it contains no DICOM series."
            raise ImageIOError(msg)
        if len(series) > 1:
            msg = (f"Cannot read DICOM folder {path}: it holds {len(series)} series ({', '.join(series)}); "
                   "put each series in its own folder.")
            raise ImageIOError(msg)
        files = sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(path), series[0])
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(files)
        image = reader.Execute()
        array, geom = array_and_geometry(image, reader=self.name, path=path)
        return array, geom.replace(extras={"series_uid": series[0], "n_files": len(files),
                                           "files": [str(f) for f in files]})

    def probe(self, path: Path) -> bool:
        return path.is_dir() and bool(sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(path)))
