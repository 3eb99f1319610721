"""Reader selection, aliases, geometry records and clear errors for bad files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tifffile

from autounet.errors import ConfigError, ImageIOError, SchemaError
from autounet.io import (
    ImageGeometry,
    file_ending_of,
    get_reader,
    read_images,
    read_segmentation,
    reader_for,
    resolve_reader_name,
    segmentation_ending,
    write_segmentation,
)

GEOM = ImageGeometry(spacing=(2.0, 1.0, 1.0))


@pytest.mark.parametrize(("ending", "expected"), [
    (".nii.gz", "simpleitk"), (".nii", "nibabel"), (".nrrd", "simpleitk"), (".seg.nrrd", "simpleitk"),
    (".mha", "simpleitk"), (".mhd", "simpleitk"), (".png", "natural2d"), (".bmp", "natural2d"),
    (".tif", "natural2d"), (".tiff", "natural2d"), (".NII.GZ", "simpleitk"),
])
def test_reader_for_follows_the_reference_order(ending: str, expected: str) -> None:
    assert reader_for(ending) == expected


def test_reader_for_tif_probes_the_example(tmp_path: Path) -> None:
    tifffile.imwrite(str(tmp_path / "flat.tif"), np.zeros((8, 9), np.uint8))
    tifffile.imwrite(str(tmp_path / "stack.tif"), np.zeros((5, 8, 9), np.uint8))
    assert reader_for(".tif", example=tmp_path / "flat.tif") == "natural2d"
    assert reader_for(".tif", example=tmp_path / "stack.tif") == "tiff3d"


def test_reader_for_a_folder_is_dicom_series(tmp_path: Path) -> None:
    assert reader_for("", example=tmp_path) == "dicom_series"


def test_segmentations_of_dicom_datasets_are_nifti() -> None:
    assert [segmentation_ending(e) for e in (".dcm", ".DCM", "", ".nii.gz", ".png", ".mha")] == [
        ".nii.gz", ".nii.gz", ".nii.gz", ".nii.gz", ".png", ".mha"]


def test_unknown_ending_lists_supported_endings() -> None:
    with pytest.raises(ImageIOError, match=r"No reader for file ending '\.xyz'.*\.nii\.gz"):
        reader_for(".xyz")


@pytest.mark.parametrize(("alias", "name"), [("SimpleITKIO", "simpleitk"), ("NibabelIO", "nibabel"),
                                             ("NaturalImage2DIO", "natural2d"), ("Tiff3DIO", "tiff3d"),
                                             ("SimpleITKIOWithReorient", "simpleitk_reorient"),
                                             ("NibabelIOWithReorient", "nibabel_reorient")])
def test_reference_class_names_are_aliases(alias: str, name: str) -> None:
    assert resolve_reader_name(alias) == name
    assert get_reader(alias) is get_reader(name)


def test_unknown_reader_name_suggests() -> None:
    with pytest.raises(ConfigError, match="Did you mean 'SimpleITKIO'"):
        get_reader("SimpleITKI0")


@pytest.mark.parametrize(("name", "ending"), [("a/b.seg.nrrd", ".seg.nrrd"), ("x.nii.gz", ".nii.gz"),
                                              ("x.NII", ".nii"), ("y.mha", ".mha"), ("z.foo.gz", ".foo.gz")])
def test_file_ending_of(name: str, ending: str) -> None:
    assert file_ending_of(name) == ending


def _write(tmp_path: Path) -> Path:
    path = tmp_path / "case_0000.nii.gz"
    write_segmentation(np.arange(4 * 16 * 16).reshape(4, 16, 16) % 7, path, GEOM)
    return path


def test_truncated_nii_gz_names_the_file(tmp_path: Path) -> None:
    good = _write(tmp_path)
    data = good.read_bytes()
    bad = tmp_path / "trunc_0000.nii.gz"
    bad.write_bytes(data[: len(data) * 2 // 3])
    with pytest.raises(ImageIOError, match=r"trunc_0000\.nii\.gz"):
        read_images([bad])


def test_garbage_file_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "junk.nii.gz"
    bad.write_bytes(b"this is not an image" * 10)
    with pytest.raises(ImageIOError, match=r"junk\.nii\.gz.*(corrupt|truncated)"):
        read_segmentation(bad)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ImageIOError, match=r"not found: .*nope\.nii\.gz"):
        read_images([tmp_path / "nope.nii.gz"])


def test_folder_where_file_expected(tmp_path: Path) -> None:
    (tmp_path / "d.nii.gz").mkdir()
    with pytest.raises(ImageIOError, match="is a folder"):
        read_images([tmp_path / "d.nii.gz"], reader="simpleitk")


def test_rgb_segmentation_is_refused(tmp_path: Path) -> None:
    from PIL import Image

    Image.fromarray(np.zeros((4, 4, 3), np.uint8)).save(tmp_path / "mask.png")
    with pytest.raises(ImageIOError, match=r"mask\.png.*3 channels"):
        read_segmentation(tmp_path / "mask.png")


def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    with pytest.raises(ImageIOError):
        write_segmentation(np.zeros((1, 2, 3, 4)), tmp_path / "x.png",
                           ImageGeometry(spacing=(999, 1, 1), origin=(0, 0), direction=(1, 0, 0, 1), is_2d=True))
    assert list(tmp_path.iterdir()) == []


def test_write_overwrites_atomically(tmp_path: Path) -> None:
    path = tmp_path / "x.nii.gz"
    write_segmentation(np.zeros((2, 2, 2)), path, GEOM)
    write_segmentation(np.ones((2, 2, 2)), path, GEOM)
    back, _ = read_segmentation(path)
    assert back.min() == 1 and sorted(p.name for p in tmp_path.iterdir()) == ["x.nii.gz"]


def test_geometry_dict_round_trip_and_validation() -> None:
    geom = ImageGeometry(spacing=(3, 1, 1), origin=(1, 2, 3), direction=tuple(np.eye(3).ravel()), reader="nibabel",
                         extras={"affine": np.eye(4).tolist()})
    assert ImageGeometry.from_dict(geom.to_dict()) == geom
    assert isinstance(geom.to_dict()["spacing"], list)
    with pytest.raises(SchemaError, match="spacing needs 3"):
        ImageGeometry(spacing=(1, 1))
    with pytest.raises(SchemaError, match="direction"):
        ImageGeometry(spacing=(1, 1, 1), origin=(0, 0, 0), direction=(1, 0, 0, 1))
    with pytest.raises(SchemaError, match="unknown key"):
        ImageGeometry.from_dict({**geom.to_dict(), "bogus": 1})


def test_reference_properties_match_simpleitk_io_layout() -> None:
    geom = ImageGeometry(spacing=(3.0, 2.0, 1.0), origin=(1, 2, 3))
    props = geom.reference_properties()
    assert props["spacing"] == [3.0, 2.0, 1.0]
    assert props["sitk_stuff"]["spacing"] == [1.0, 2.0, 3.0]
    assert props["sitk_stuff"]["origin"] == [1.0, 2.0, 3.0]
