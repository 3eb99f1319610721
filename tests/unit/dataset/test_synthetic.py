"""``autounet.testing``: synthetic datasets, and the demo command built on them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from autounet.cli import main
from autounet.dataset import open_raw_dataset, verify
from autounet.io import read_images, read_segmentation
from autounet.testing import make_synthetic_dataset, synthetic_case


def test_case_has_two_structures_with_distinct_intensities() -> None:
    case = synthetic_case((12, 48, 48), (3.0, 1.0, 1.0), n_channels=2, rng=np.random.default_rng(3))
    assert case.images.shape == (2, 12, 48, 48) and case.images.dtype == np.float32
    assert case.label.dtype == np.uint8 and set(np.unique(case.label)) == {0, 1, 2}
    means = [float(case.images[0][case.label == k].mean()) for k in range(3)]
    assert means[0] < means[1] < means[2]  # channel 0: background < ellipsoid < tube
    assert min(means[1] - means[0], means[2] - means[1]) > 20  # several noise standard deviations (10)
    ch1 = [float(case.images[1][case.label == k].mean()) for k in range(3)]
    assert ch1[1] > ch1[2] > ch1[0]  # channel 1 has another contrast


def test_structures_are_sized_in_millimetres() -> None:
    """With 3 mm slices the ellipsoid spans a few slices and about a dozen voxels in-plane."""
    case = synthetic_case((24, 64, 64), (3.0, 1.0, 1.0), rng=np.random.default_rng(0))
    z, y, x = np.nonzero(case.label == 1)
    extent = (np.ptp(z) + 1, np.ptp(y) + 1, np.ptp(x) + 1)
    assert 2 <= extent[0] <= 10 and 8 <= extent[1] <= 30 and 8 <= extent[2] <= 30


def test_dataset_is_complete_deterministic_and_valid(tmp_path: Path) -> None:
    a = make_synthetic_dataset(tmp_path / "a" / "Dataset998_S", n_cases=3, shape=(6, 16, 16), spacing=(4, 1, 1),
                               n_channels=2, seed=5, n_test=1)
    b = make_synthetic_dataset(tmp_path / "b" / "Dataset998_S", n_cases=3, shape=(6, 16, 16), spacing=(4, 1, 1),
                               n_channels=2, seed=5, n_test=1)
    ds = open_raw_dataset(a)
    assert ds.case_ids == ["case_000", "case_001", "case_002"] and ds.spec.num_channels == 2
    assert list(ds.test_cases()) == ["test_000"]
    img_a, geom = read_images(ds.cases["case_001"].images)
    img_b, _ = read_images(open_raw_dataset(b).cases["case_001"].images)
    np.testing.assert_array_equal(img_a, img_b)
    assert geom.spacing == (4.0, 1.0, 1.0)
    seg, _ = read_segmentation(ds.cases["case_001"].label)
    assert seg.shape == (1, 6, 16, 16)
    assert json.loads((a / "dataset.json").read_text(encoding="utf-8"))["labels"] == {"background": 0, "ellipsoid": 1, "tube": 2}
    assert verify(a, workers=1).ok


@pytest.fixture
def demo_without_training(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only the demo's dataset and verify steps (the pipeline step is covered by tests/integration)."""
    from autounet.cli import demo

    monkeypatch.setattr(demo, "STEPS", [s for s in demo.STEPS if s[0] in ("dataset", "verify")])


@pytest.mark.usefixtures("demo_without_training")
def test_demo_generates_verifies_and_reuses(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["demo", "--workspace", str(tmp_path / "ws"), "--cases", "2", "--shape", "6", "16", "16", "-j", "1"]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "[1/2] dataset\n      generated" in out and "[2/2] verify\n      2 cases OK" in out
    assert (tmp_path / "ws" / "raw" / "Dataset998_Synthetic" / "dataset.json").is_file()
    assert main(args) == 0
    assert "[1/2] dataset\n      reusing" in capsys.readouterr().out


@pytest.mark.usefixtures("demo_without_training")
def test_demo_on_images_and_labels_folders(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = make_synthetic_dataset(tmp_path / "src" / "Dataset001_X", n_cases=2, shape=(4, 8, 8))
    plain = tmp_path / "MyData"
    (plain / "images").mkdir(parents=True)
    (plain / "labels").mkdir()
    for i in range(2):
        (plain / "images" / f"case_{i:03d}.nii.gz").write_bytes((src / "imagesTr" / f"case_{i:03d}_0000.nii.gz")
                                                                .read_bytes())
        (plain / "labels" / f"case_{i:03d}.nii.gz").write_bytes((src / "labelsTr" / f"case_{i:03d}.nii.gz")
                                                                .read_bytes())
    assert main(["demo", "--workspace", str(tmp_path / "ws"), "--dataset", str(plain), "-j", "1"]) == 0
    assert "imported 2 cases" in capsys.readouterr().out
    data = json.loads((tmp_path / "ws" / "raw" / "Dataset999_MyData" / "dataset.json").read_text(encoding="utf-8"))
    assert data["labels"] == {"background": 0, "label_1": 1, "label_2": 2}
    assert main(["demo", "--workspace", str(tmp_path / "ws"), "--dataset", str(src), "-j", "1"]) == 0
    assert "      copied" in capsys.readouterr().out
