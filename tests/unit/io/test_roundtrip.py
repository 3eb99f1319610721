"""Reader/writer round trips: array, spacing, origin and direction survive for every format."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from autounet.errors import ImageIOError
from autounet.io import ImageGeometry, read_images, read_segmentation, write_image, write_segmentation


def _oblique(theta: float = 0.3) -> tuple[float, ...]:
    c, s = np.cos(theta), np.sin(theta)
    # rotation about z, then a flip of x: a proper non-identity, non-diagonal direction matrix
    r = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]]) @ np.diag([-1.0, 1.0, 1.0])
    return tuple(r.ravel())


GEOMETRY = ImageGeometry(spacing=(3.0, 0.5, 0.75), origin=(10.0, -5.0, 2.5), direction=_oblique())
ITK_FORMATS = [".nii.gz", ".nii", ".nrrd", ".seg.nrrd", ".mha", ".mhd"]


@pytest.fixture
def seg(rng: np.random.Generator) -> np.ndarray:
    return rng.integers(0, 4, (1, 5, 6, 7)).astype(np.uint8)


@pytest.mark.parametrize("ending", ITK_FORMATS)
def test_segmentation_round_trip_keeps_array_and_geometry(tmp_path: Path, seg: np.ndarray, ending: str) -> None:
    path = tmp_path / f"case{ending}"
    write_segmentation(seg, path, GEOMETRY)
    back, geom = read_segmentation(path)
    assert back.shape == seg.shape
    np.testing.assert_array_equal(back, seg)
    np.testing.assert_allclose(geom.spacing, GEOMETRY.spacing, rtol=1e-6)
    np.testing.assert_allclose(geom.origin, GEOMETRY.origin, atol=1e-5)
    np.testing.assert_allclose(geom.direction, GEOMETRY.direction, atol=1e-6)
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []  # no temporary leftovers


@pytest.mark.parametrize("ending", [".nii.gz", ".nrrd", ".mha"])
def test_float_image_round_trip_is_lossless(tmp_path: Path, rng: np.random.Generator, ending: str) -> None:
    image = rng.normal(size=(1, 4, 5, 6)).astype(np.float32)
    write_image(image, tmp_path / f"img{ending}", GEOMETRY)
    back, geom = read_images([tmp_path / f"img{ending}"])
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, image)
    np.testing.assert_allclose(geom.direction, GEOMETRY.direction, atol=1e-6)


def test_reader_matches_independent_simpleitk_geometry(tmp_path: Path) -> None:
    """Spacing is ITK's reversed; origin/direction are ITK's own values; the array is (1, z, y, x)."""
    array = np.arange(2 * 3 * 4, dtype=np.int16).reshape(2, 3, 4)  # (z, y, x)
    image = sitk.GetImageFromArray(array)
    image.SetSpacing((0.7, 0.8, 2.5))  # ITK order (x, y, z)
    image.SetOrigin((1.0, 2.0, 3.0))
    image.SetDirection(_oblique(0.1))
    sitk.WriteImage(image, str(tmp_path / "x.nii.gz"))
    data, geom = read_images(tmp_path / "x.nii.gz")
    assert data.shape == (1, 2, 3, 4) and data.dtype == np.float32
    np.testing.assert_array_equal(data[0], array)
    np.testing.assert_allclose(geom.spacing, (2.5, 0.8, 0.7), rtol=1e-6)
    np.testing.assert_allclose(geom.origin, (1.0, 2.0, 3.0), atol=1e-5)
    np.testing.assert_allclose(geom.direction, _oblique(0.1), atol=1e-6)
    assert geom.reader == "simpleitk" and not geom.is_2d


@pytest.mark.parametrize("reader", ["nibabel", "NibabelIO", "nibabel_reorient", "simpleitk_reorient"])
def test_nibabel_and_reorienting_readers_round_trip(tmp_path: Path, seg: np.ndarray, reader: str) -> None:
    write_segmentation(seg, tmp_path / "ref.nii.gz", GEOMETRY)
    data, geom = read_segmentation(tmp_path / "ref.nii.gz", reader=reader)
    write_segmentation(data, tmp_path / "out.nii.gz", geom)
    back, back_geom = read_segmentation(tmp_path / "out.nii.gz", reader="simpleitk")
    np.testing.assert_array_equal(back, seg)
    np.testing.assert_allclose(back_geom.origin, GEOMETRY.origin, atol=1e-4)
    np.testing.assert_allclose(back_geom.direction, GEOMETRY.direction, atol=1e-5)
    np.testing.assert_allclose(back_geom.spacing, GEOMETRY.spacing, rtol=1e-5)


def test_nibabel_reader_agrees_with_simpleitk_on_geometry(tmp_path: Path, seg: np.ndarray) -> None:
    write_segmentation(seg, tmp_path / "x.nii.gz", GEOMETRY)
    a, ga = read_segmentation(tmp_path / "x.nii.gz", reader="simpleitk")
    b, gb = read_segmentation(tmp_path / "x.nii.gz", reader="nibabel")
    np.testing.assert_array_equal(a, b)
    np.testing.assert_allclose(ga.spacing, gb.spacing, rtol=1e-6)
    np.testing.assert_allclose(ga.origin, gb.origin, atol=1e-5)
    np.testing.assert_allclose(ga.direction, gb.direction, atol=1e-6)


def test_reoriented_reader_returns_ras_array(tmp_path: Path, seg: np.ndarray) -> None:
    write_segmentation(seg, tmp_path / "x.nii.gz", ImageGeometry(spacing=(1, 1, 1)))  # LPS identity in ITK
    data, geom = read_segmentation(tmp_path / "x.nii.gz", reader="SimpleITKIOWithReorient")
    assert geom.extras["original_orientation"] == "LPS"
    # RAS flips x and y relative to LPS: (z, y, x) array axes 1 and 2 are reversed
    np.testing.assert_array_equal(data, seg[:, :, ::-1, ::-1])


def test_tiff3d_round_trip_with_spacing_sidecar(tmp_path: Path, seg: np.ndarray) -> None:
    geom = ImageGeometry(spacing=(3.0, 0.5, 0.75), reader="tiff3d")
    write_segmentation(seg, tmp_path / "case.tif", geom)
    assert (tmp_path / "case.json").is_file()
    back, g = read_segmentation(tmp_path / "case.tif")
    np.testing.assert_array_equal(back, seg)
    assert g.reader == "tiff3d" and g.spacing == (3.0, 0.5, 0.75)
    # images: the side-car of case_0000.tif is case.json
    write_image(seg.astype(np.float32), tmp_path / "img" / "case_0000.tif", geom)
    (tmp_path / "img" / "case_0000.json").rename(tmp_path / "img" / "case.json")
    data, g2 = read_images([tmp_path / "img" / "case_0000.tif"])
    np.testing.assert_array_equal(data, seg)
    assert g2.spacing == (3.0, 0.5, 0.75)


def test_tiff3d_without_sidecar_assumes_unit_spacing(tmp_path: Path, seg: np.ndarray) -> None:
    import tifffile

    tifffile.imwrite(str(tmp_path / "x_0000.tif"), seg[0])
    _, geom = read_images([tmp_path / "x_0000.tif"])
    assert geom.reader == "tiff3d" and geom.spacing == (1.0, 1.0, 1.0)


NATURAL_2D = ImageGeometry(spacing=(999, 1, 1), origin=(0, 0), direction=(1, 0, 0, 1), is_2d=True,
                           reader="natural2d")


@pytest.mark.parametrize("ending", [".png", ".bmp", ".tif"])
def test_natural_2d_grey_round_trip(tmp_path: Path, rng: np.random.Generator, ending: str) -> None:
    label = rng.integers(0, 3, (1, 1, 9, 11)).astype(np.uint8)
    write_segmentation(label, tmp_path / f"x{ending}", NATURAL_2D)
    back, geom = read_segmentation(tmp_path / f"x{ending}")
    assert back.shape == (1, 1, 9, 11)
    np.testing.assert_array_equal(back, label)
    assert geom.is_2d and geom.spacing == (999.0, 1.0, 1.0) and geom.reader == "natural2d"


def test_rgb_png_becomes_three_channels(tmp_path: Path, rng: np.random.Generator) -> None:
    from PIL import Image

    rgb = rng.integers(0, 256, (9, 11, 3)).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "x_0000.png")
    data, geom = read_images([tmp_path / "x_0000.png"])
    assert data.shape == (3, 1, 9, 11)
    np.testing.assert_array_equal(data[:, 0], rgb.transpose(2, 0, 1))
    assert geom.spacing == (999.0, 1.0, 1.0)


def test_sixteen_bit_png_keeps_values(tmp_path: Path) -> None:
    from PIL import Image

    grey = (np.arange(20, dtype=np.uint16).reshape(4, 5) * 3000).astype(np.uint16)
    Image.fromarray(grey).save(tmp_path / "x.png")
    data, _ = read_images(tmp_path / "x.png")
    np.testing.assert_array_equal(data[0, 0], grey)


def test_jpeg_is_read_but_never_written(tmp_path: Path, rng: np.random.Generator) -> None:
    from PIL import Image

    Image.fromarray(rng.integers(0, 256, (8, 8)).astype(np.uint8)).save(tmp_path / "x.jpg")
    data, geom = read_images(tmp_path / "x.jpg")
    assert data.shape == (1, 1, 8, 8) and geom.reader == "natural2d"
    with pytest.raises(ImageIOError, match="lossy"):
        write_segmentation(np.zeros((1, 1, 8, 8)), tmp_path / "y.jpg", geom)


def test_2d_itk_file_gets_dummy_spacing_and_is_written_back_as_2d(tmp_path: Path) -> None:
    image = sitk.GetImageFromArray(np.arange(12, dtype=np.uint8).reshape(3, 4))
    image.SetSpacing((0.5, 0.8))
    image.SetOrigin((4.0, 5.0))
    sitk.WriteImage(image, str(tmp_path / "x.nii.gz"))
    data, geom = read_images(tmp_path / "x.nii.gz")
    assert data.shape == (1, 1, 3, 4) and geom.is_2d
    np.testing.assert_allclose(geom.spacing, (999 * 0.8, 0.8, 0.5), rtol=1e-6)
    write_segmentation(data.astype(np.uint8)[0], tmp_path / "seg.nii.gz", geom)
    out = sitk.ReadImage(str(tmp_path / "seg.nii.gz"))
    assert out.GetDimension() == 2
    np.testing.assert_allclose(out.GetSpacing(), (0.5, 0.8), rtol=1e-6)
    np.testing.assert_allclose(out.GetOrigin(), (4.0, 5.0))
    np.testing.assert_array_equal(sitk.GetArrayFromImage(out), np.arange(12).reshape(3, 4))


def test_4d_file_is_read_as_channels(tmp_path: Path, rng: np.random.Generator) -> None:
    channels = rng.normal(size=(2, 3, 4, 5)).astype(np.float32)
    write_image(channels, tmp_path / "x.nii.gz", GEOMETRY)
    assert sitk.ReadImage(str(tmp_path / "x.nii.gz")).GetDimension() == 4
    data, geom = read_images(tmp_path / "x.nii.gz")
    np.testing.assert_array_equal(data, channels)
    np.testing.assert_allclose(geom.spacing, GEOMETRY.spacing, rtol=1e-6)
    np.testing.assert_allclose(geom.direction, GEOMETRY.direction, atol=1e-6)


def test_channel_files_are_stacked_and_must_agree(tmp_path: Path, rng: np.random.Generator) -> None:
    a, b = rng.normal(size=(2, 1, 3, 4, 5)).astype(np.float32)
    write_image(a, tmp_path / "c_0000.nii.gz", GEOMETRY)
    write_image(b, tmp_path / "c_0001.nii.gz", GEOMETRY)
    data, _ = read_images([tmp_path / "c_0000.nii.gz", tmp_path / "c_0001.nii.gz"])
    np.testing.assert_array_equal(data, np.concatenate([a, b]))
    write_image(b, tmp_path / "c_0002.nii.gz", GEOMETRY.replace(spacing=(2.0, 0.5, 0.75)))
    with pytest.raises(ImageIOError, match="disagree in spacing.*c_0002"):
        read_images([tmp_path / "c_0000.nii.gz", tmp_path / "c_0002.nii.gz"])
    write_image(b[:, :2], tmp_path / "c_0003.nii.gz", GEOMETRY)
    with pytest.raises(ImageIOError, match="disagree in shape.*c_0003"):
        read_images([tmp_path / "c_0000.nii.gz", tmp_path / "c_0003.nii.gz"])


def test_label_dtype_is_the_smallest_that_fits(tmp_path: Path) -> None:
    for values, dtype in (([0, 1, 255], np.uint8), ([0, 256], np.uint16), ([0, 70000], np.uint32)):
        seg = np.array(values, dtype=np.int64).reshape(1, 1, 1, -1)
        write_segmentation(seg, tmp_path / "x.nrrd", GEOMETRY)
        back, _ = read_segmentation(tmp_path / "x.nrrd")
        assert back.dtype == dtype
        np.testing.assert_array_equal(back, seg)


def test_prediction_written_in_input_geometry_with_other_ending(tmp_path: Path, seg: np.ndarray) -> None:
    """A geometry from a NRRD input is applied when writing NIfTI."""
    write_segmentation(seg, tmp_path / "in.nrrd", GEOMETRY)
    _, geom = read_segmentation(tmp_path / "in.nrrd")
    write_segmentation(seg[0], tmp_path / "out.nii.gz", geom)
    _, out_geom = read_segmentation(tmp_path / "out.nii.gz")
    np.testing.assert_allclose(out_geom.origin, GEOMETRY.origin, atol=1e-5)
    np.testing.assert_allclose(out_geom.direction, GEOMETRY.direction, atol=1e-6)
