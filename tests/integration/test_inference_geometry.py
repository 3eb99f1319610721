"""``autounet predict`` on real files: outputs carry the input's exact geometry and file type.

Random-weight tiny models (``autounet.inference.testing``) stand in for trained ones; what is checked is the
geometry plumbing: spacing, origin and direction (non-identity, non-zero origin) for NIfTI, NRRD, PNG and a DICOM
series, through the public CLI.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import SimpleITK as sitk

from autounet.cli import main
from autounet.inference.testing import tiny_dataset, tiny_plans, write_random_model

pytestmark = pytest.mark.integration

OBLIQUE = (0.0, 0.0, 1.0, 0.6, 0.8, 0.0, -0.8, 0.6, 0.0)  # a rotation with a permutation: far from identity


def _model(tmp_path: Path, configuration: str = "3d_fullres", *, file_ending: str = ".nii.gz",
           spacing=(1.0, 1.0, 1.0)) -> Path:
    return write_random_model(tmp_path / "results", tiny_plans(spacing=spacing), tiny_dataset(file_ending=file_ending),
                              configuration)


def _predict(model: Path, inputs: list[Path], out: Path, *extra: str) -> None:
    code = main(["predict", "--quiet", "-m", str(model), "-i", *map(str, inputs), "-o", str(out),
                 "--device", "cpu", "--no-tta", *extra])
    assert code == 0


def _assert_same_geometry(a: sitk.Image, b: sitk.Image) -> None:
    assert a.GetSize() == b.GetSize()
    assert a.GetSpacing() == b.GetSpacing()
    assert a.GetOrigin() == b.GetOrigin()
    assert a.GetDirection() == b.GetDirection()


@pytest.mark.parametrize("ending", [".nii.gz", ".nrrd"])
def test_itk_files_keep_oblique_direction_and_origin(shared_datasets, tmp_path, ending):
    src = sitk.ReadImage(str(shared_datasets / "Hippocampus" / "images" / "hippocampus_001.nii.gz"))
    src.SetDirection(OBLIQUE)
    src.SetOrigin((-12.5, 40.25, 7.0))
    src.SetSpacing((1.0, 1.25, 0.9))
    inputs = tmp_path / "in"
    inputs.mkdir()
    sitk.WriteImage(src, str(inputs / f"hip_0000{ending}"))
    out = tmp_path / "out"
    _predict(_model(tmp_path, file_ending=ending), [inputs], out)
    seg = sitk.ReadImage(str(out / f"hip{ending}"))
    _assert_same_geometry(seg, sitk.ReadImage(str(inputs / f"hip_0000{ending}")))
    assert set(np.unique(sitk.GetArrayFromImage(seg))) <= {0, 1, 2}


def test_png_keeps_its_size(shared_datasets, tmp_path):
    from PIL import Image

    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(shared_datasets / "HC18_FetalHead" / "training_set" / "000_HC.png", inputs / "fetal_0000.png")
    out = tmp_path / "out"
    _predict(_model(tmp_path, "2d", file_ending=".png"), [inputs / "fetal_0000.png"], out, "--tile-batch", "16")
    src = np.asarray(Image.open(inputs / "fetal_0000.png"))
    seg = np.asarray(Image.open(out / "fetal.png"))
    assert seg.shape == src.shape[:2] and seg.dtype == np.uint8


@pytest.mark.parametrize("output_format", [None, ".nrrd"])
def test_dicom_series_output_lands_on_the_series(shared_datasets, tmp_path, output_format):
    study = next((shared_datasets / "BrainTumorProgression_DICOM" / "PGBM-001").iterdir())
    series = next(d for d in study.iterdir() if "T1post" in d.name)
    out = tmp_path / "out"
    model = _model(tmp_path, spacing=(6.5, 2.75, 2.75))  # anisotropic plans: separate-z export
    _predict(model, [series], out, *(["--output-format", output_format] if output_format else []))
    reader = sitk.ImageSeriesReader()
    reader.SetFileNames(reader.GetGDCMSeriesFileNames(str(series)))
    ref = reader.Execute()
    seg = sitk.ReadImage(str(out / f"{series.name}{output_format or '.nii.gz'}"))
    # NRRD keeps float64 (space directions = direction x spacing, so equal up to one rounding); NIfTI stores
    # its affine in float32
    tol = 1e-12 if output_format == ".nrrd" else 1e-5
    assert seg.GetSize() == ref.GetSize()
    np.testing.assert_allclose(seg.GetSpacing(), ref.GetSpacing(), rtol=tol)
    np.testing.assert_allclose(seg.GetOrigin(), ref.GetOrigin(), rtol=tol, atol=tol * 10)
    np.testing.assert_allclose(seg.GetDirection(), ref.GetDirection(), rtol=tol, atol=tol)


def test_workspace_model_by_dataset_and_configuration(shared_datasets, tmp_path):
    workspace = tmp_path / "ws"
    write_random_model(workspace / "results" / "Dataset900_Tiny", tiny_plans(), tiny_dataset(), "3d_fullres",
                       folds=(0, 1))
    inputs = tmp_path / "in"
    inputs.mkdir()
    shutil.copy(shared_datasets / "Hippocampus" / "images" / "hippocampus_003.nii.gz", inputs / "h_0000.nii.gz")
    code = main(["predict", "--quiet", "--workspace", str(workspace), "-d", "900", "-c", "3d_fullres", "-f", "0",
                 "1", "-i", str(inputs), "-o", str(tmp_path / "out"), "--device", "cpu", "--no-tta"])
    assert code == 0 and (tmp_path / "out" / "h.nii.gz").is_file()
    # a missing model is a clear usage error (exit code 1 or 2, message naming the folder)
    assert main(["predict", "--quiet", "--workspace", str(workspace), "-d", "900", "-c", "2d", "-i", str(inputs),
                 "-o", str(tmp_path / "out2")]) != 0
