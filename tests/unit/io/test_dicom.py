"""A DICOM series written by the test is read back with the right geometry."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from autounet.errors import ImageIOError
from autounet.io import read_images, read_segmentation, reader_for, write_segmentation


def write_dicom_series(volume: np.ndarray, folder: Path, *, spacing: tuple[float, float, float],
                       origin: tuple[float, float, float], direction: tuple[float, ...], series_uid: str) -> None:
    """Write ``volume`` (z, y, x) int16 as one 2D DICOM file per slice with position/orientation tags."""
    folder.mkdir(parents=True, exist_ok=True)
    d = np.asarray(direction).reshape(3, 3)
    writer = sitk.ImageFileWriter()
    writer.KeepOriginalImageUIDOn()
    for k in range(volume.shape[0]):
        sl = sitk.GetImageFromArray(volume[k])
        sl.SetSpacing(spacing[:2])
        position = np.asarray(origin) + k * spacing[2] * d[:, 2]
        tags = {
            "0008|0060": "MR",
            "0008|0008": "ORIGINAL\\PRIMARY\\AXIAL",
            "0020|000d": "1.2.826.0.1.3680043.2.1125.1",
            "0020|000e": series_uid,
            "0020|0037": "\\".join(f"{v:.6f}" for v in (*d[:, 0], *d[:, 1])),
            "0020|0032": "\\".join(f"{v:.6f}" for v in position),
            "0020|0013": str(k + 1),
            "0018|0050": f"{spacing[2]:.6f}",
            "0008|0018": f"{series_uid}.{k + 1}",
            "0008|0012": time.strftime("%Y%m%d"),
        }
        for tag, value in tags.items():
            sl.SetMetaData(tag, value)
        writer.SetFileName(str(folder / f"slice{k:03d}.dcm"))
        writer.Execute(sl)


def _rotation(theta: float) -> tuple[float, ...]:
    c, s = np.cos(theta), np.sin(theta)
    return tuple(np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]).ravel())


def test_dicom_series_read_with_geometry(tmp_path: Path, rng: np.random.Generator) -> None:
    volume = rng.integers(-100, 1000, (5, 12, 10)).astype(np.int16)
    spacing, origin, direction = (0.7, 0.8, 2.5), (-20.0, 13.5, 7.0), _rotation(0.25)
    write_dicom_series(volume, tmp_path / "series", spacing=spacing, origin=origin, direction=direction,
                       series_uid="1.2.826.0.1.3680043.2.1125.2")
    assert reader_for("", example=tmp_path / "series") == "dicom_series"
    data, geom = read_images(tmp_path / "series")
    assert data.shape == (1, 5, 12, 10)
    np.testing.assert_array_equal(data[0], volume)
    np.testing.assert_allclose(geom.spacing, (2.5, 0.8, 0.7), rtol=1e-5)
    np.testing.assert_allclose(geom.origin, origin, atol=1e-4)
    np.testing.assert_allclose(geom.direction, direction, atol=1e-5)
    assert geom.reader == "dicom_series" and geom.extras["n_files"] == 5

    # a prediction for the series is written as NIfTI in the series' geometry
    write_segmentation((data[0] > 0).astype(np.uint8), tmp_path / "pred.nii.gz", geom)
    seg, seg_geom = read_segmentation(tmp_path / "pred.nii.gz")
    np.testing.assert_array_equal(seg[0], volume > 0)
    np.testing.assert_allclose(seg_geom.origin, origin, atol=1e-4)
    np.testing.assert_allclose(seg_geom.direction, direction, atol=1e-5)


def test_folder_with_two_series_is_refused(tmp_path: Path) -> None:
    vol = np.zeros((2, 4, 4), np.int16)
    for uid in ("1.2.3.4.1", "1.2.3.4.2"):
        write_dicom_series(vol, tmp_path / "mixed", spacing=(1, 1, 1), origin=(0, 0, float(uid[-1]) * 10),
                           direction=_rotation(0), series_uid=uid)
        for f in (tmp_path / "mixed").glob("slice*.dcm"):
            f.rename(f.with_name(f"{uid}_{f.name}"))
    with pytest.raises(ImageIOError, match="2 series"):
        read_images(tmp_path / "mixed")


def test_empty_folder_is_not_a_series(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ImageIOError, match="no DICOM series"):
        read_images(tmp_path / "empty")


def test_dicom_series_cannot_be_written(tmp_path: Path) -> None:
    vol = np.zeros((2, 4, 4), np.int16)
    write_dicom_series(vol, tmp_path / "s", spacing=(1, 1, 1), origin=(0, 0, 0), direction=_rotation(0),
                       series_uid="1.2.3.9")
    _, geom = read_images(tmp_path / "s")
    with pytest.raises(ImageIOError, match="no writer"):
        write_segmentation(np.zeros((2, 4, 4)), tmp_path / "out_folder", geom)
