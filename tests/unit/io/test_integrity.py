"""Truncation and hidden NaN detection for NIfTI files (ITK reads both silently as zeros)."""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from autounet.errors import ImageIOError
from autounet.io import read_images
from autounet.io._integrity import check_complete, nifti_nonfinite


def _save(image: nib.Nifti1Image | nib.Nifti2Image, path: Path) -> Path:
    nib.save(image, str(path))
    return path


@pytest.mark.parametrize("cls", [nib.Nifti1Image, nib.Nifti2Image])
@pytest.mark.parametrize("ending", [".nii", ".nii.gz"])
def test_truncation_detected_for_nifti1_and_2(tmp_path: Path, rng: np.random.Generator, cls: type,
                                              ending: str) -> None:
    data = rng.normal(size=(8, 9, 10)).astype(np.float32)
    path = _save(cls(data, np.eye(4)), tmp_path / f"x{ending}")
    check_complete(path)  # complete: no error
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) * 3 // 4])
    with pytest.raises(ImageIOError, match=r"x\.nii.*truncated"):
        check_complete(path)
    with pytest.raises(ImageIOError, match="truncated"):
        read_images([path])


def test_big_endian_header(tmp_path: Path) -> None:
    header = nib.Nifti1Header(endianness=">")
    image = nib.Nifti1Image(np.arange(60, dtype=">i2").reshape(3, 4, 5), np.eye(4), header=header)
    path = _save(image, tmp_path / "be.nii")
    assert path.read_bytes()[:4] == (348).to_bytes(4, "big")
    check_complete(path)
    path.write_bytes(path.read_bytes()[:-10])
    with pytest.raises(ImageIOError, match="truncated"):
        check_complete(path)


def test_multi_member_gzip_is_complete(tmp_path: Path, rng: np.random.Generator) -> None:
    """bgzip-style files: the trailer holds only the last member's size; the full stream decides."""
    raw = gzip.decompress(_save(nib.Nifti1Image(rng.normal(size=(6, 6, 6)).astype(np.float32), np.eye(4)),
                                tmp_path / "a.nii.gz").read_bytes())
    path = tmp_path / "multi.nii.gz"
    path.write_bytes(gzip.compress(raw[:500]) + gzip.compress(raw[500:]))
    check_complete(path)
    data, _ = read_images([path])
    assert data.shape == (1, 6, 6, 6)


def test_nonfinite_counts_stored_values(tmp_path: Path) -> None:
    data = np.ones((3, 4, 5), np.float32)
    data[0, 0, :2] = np.nan
    data[1, 1, 1] = np.inf
    data[2, 2, 2] = -np.inf
    path = _save(nib.Nifti1Image(data, np.eye(4)), tmp_path / "n.nii.gz")
    assert nifti_nonfinite(path) == (2, 2)
    loaded, _ = read_images([path])  # ITK hides them as zeros
    assert np.isfinite(loaded).all()
    ints = _save(nib.Nifti1Image(np.ones((2, 2, 2), np.int16), np.eye(4)), tmp_path / "i.nii.gz")
    assert nifti_nonfinite(ints) == (0, 0)
