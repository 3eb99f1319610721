"""Checkpoints are read weights-only: a crafted payload never runs, real checkpoints of both implementations load."""

from __future__ import annotations

import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from autounet.cli import main
from autounet.errors import CheckpointError
from autounet.inference.testing import tiny_dataset, tiny_plans, write_random_model
from autounet.io import ImageGeometry, read_segmentation, write_image
from autounet.training import checkpoint as ckpt

GOLDEN = Path(__file__).resolve().parents[2] / "data" / "golden" / "reference_model"


class _Payload:
    """Unpickling this creates a marker file (stands in for arbitrary code)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.makedirs, (str(self.marker),))


def _malicious(path: Path, marker: Path, *, legacy: bool = False) -> Path:
    content = {"network_weights": {"w": torch.zeros(2)}, "init_args": {"configuration": "3d_fullres"},
               "trainer_name": _Payload(marker)}
    torch.save(content, path, _use_new_zipfile_serialization=not legacy)
    return path


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "legacy"])
def test_crafted_checkpoint_does_not_run(tmp_path: Path, legacy: bool) -> None:
    marker = tmp_path / "PWNED"
    path = _malicious(tmp_path / "checkpoint_final.pth", marker, legacy=legacy)
    with pytest.raises(CheckpointError) as info:
        ckpt.load_checkpoint(path)
    assert not marker.exists()
    message = str(info.value)
    assert str(path) in message and "os.makedirs" in message and "\n" not in message


def test_plain_pickle_file_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    path = tmp_path / "weights.pth"
    path.write_bytes(pickle.dumps({"a": _Payload(marker)}, protocol=2))
    with pytest.raises(CheckpointError, match="os.makedirs"):
        ckpt.load_checkpoint(path)
    assert not marker.exists()


def test_predict_with_crafted_model_folder_fails_in_one_line(tmp_path: Path, capsys) -> None:
    model_dir = write_random_model(tmp_path / "results" / "Dataset900_Tiny", tiny_plans(), tiny_dataset(),
                                   "3d_fullres", folds=(0,))
    marker = tmp_path / "PWNED"
    _malicious(model_dir / "fold_0" / ckpt.FINAL, marker)
    (tmp_path / "in").mkdir()
    write_image(np.zeros((8, 8, 8), np.float32), tmp_path / "in" / "a_0000.nii.gz", ImageGeometry(spacing=(1.0, 1.0, 1.0)))
    code = main(["predict", "--workspace", str(tmp_path / "ws"), "-m", str(model_dir), "-f", "0",
                 "-i", str(tmp_path / "in"), "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err
    assert code == 1 and not marker.exists()
    assert "Traceback" not in err and len(err.strip().splitlines()) == 1 and "os.makedirs" in err


def test_pretrained_crafted_checkpoint_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    path = _malicious(tmp_path / "pre.pth", marker)
    with pytest.raises(CheckpointError, match="Refusing"):
        ckpt.load_pretrained(torch.nn.Linear(2, 2), path)
    assert not marker.exists()


def test_own_checkpoint_with_numpy_state_round_trips(tmp_path: Path) -> None:
    np.random.seed(3)
    content = {"network_weights": {"w": torch.arange(3.0)}, "rng_state": ckpt.rng_state(),
               "_best_ema": np.float64(0.5), "logging": {"values": {"dice": [np.float32(0.25), 0.5]}},
               "inference_allowed_mirroring_axes": (0, 1), "init_args": {"device": torch.device("cpu")}}
    ckpt.save_checkpoint(tmp_path / "c.pth", content)
    back = ckpt.load_checkpoint(tmp_path / "c.pth")
    assert back.best_ema == 0.5 and back.logging.values["dice"][0] == np.float32(0.25)
    assert np.array_equal(back.rng_state.numpy[1], content["rng_state"]["numpy"][1])
    assert back.inference_allowed_mirroring_axes == (0, 1) and back.init_args.device == "cpu"


def test_object_arrays_are_refused(tmp_path: Path) -> None:
    marker = tmp_path / "PWNED"
    arr = np.empty(1, dtype=object)
    arr[0] = _Payload(marker)
    torch.save({"x": arr}, tmp_path / "o.pth")
    with pytest.raises(CheckpointError):
        ckpt.load_checkpoint(tmp_path / "o.pth")
    assert not marker.exists()


def test_non_dict_checkpoint_is_refused(tmp_path: Path) -> None:
    torch.save([torch.zeros(1)], tmp_path / "l.pth")
    with pytest.raises(CheckpointError, match="not a dict"):
        ckpt.load_checkpoint(tmp_path / "l.pth")


def test_reference_checkpoint_loads() -> None:
    """A checkpoint written by nnU-Net v2.8.1's own trainer (numpy scalars in its log) loads weights-only."""
    path = next(GOLDEN.glob("*/fold_0/checkpoint_final.pth"))
    content = ckpt.load_checkpoint(path)
    assert content.trainer_name == "nnUNetTrainer" and content.current_epoch == 1
    assert content.configuration == "2d" and content.best_ema == 0.0  # a numpy float32 in the file
    assert all(bool(torch.isfinite(v).all()) for v in content.network_weights.values())
    assert any(".all_modules." in k for k in content.network_weights)
    assert content.optimizer_state is not None and zipfile.is_zipfile(path)


def test_reference_model_predicts_as_the_reference(tmp_path: Path, capsys) -> None:
    """``predict -m`` on the reference-trained model folder gives the reference's own probabilities."""
    model = next(GOLDEN.glob("nnUNetTrainer__*"))
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "case_0000.nii.gz").write_bytes((GOLDEN / "case_0000.nii.gz").read_bytes())
    code = main(["predict", "-m", str(model), "-f", "0", "-i", str(tmp_path / "in"), "-o", str(tmp_path / "out"),
                 "--no-tta", "--device", "cpu", "--save-probabilities", "--workspace", str(tmp_path / "ws")])
    assert code == 0, capsys.readouterr().err
    with np.load(tmp_path / "out" / "case.npz") as ours, np.load(GOLDEN / "case_reference_probabilities.npz") as ref:
        assert np.isfinite(ref["probabilities"]).all() and ref["probabilities"].std() > 1e-3
        diff = np.abs(ours["probabilities"] - ref["probabilities"])
    assert diff.max() < 0.02 and diff.mean() < 1e-3, (diff.max(), diff.mean())  # numeric noise; a transposition gives 0.7
    seg, _ = read_segmentation(tmp_path / "out" / "case.nii.gz")
    ref_seg, _ = read_segmentation(GOLDEN / "case_reference_prediction.nii.gz")
    assert np.array_equal(seg, ref_seg)


def test_corrupt_file_is_unreadable_not_refused(tmp_path: Path) -> None:
    (tmp_path / "c.pth").write_bytes(b"\x80\x02garbage that is no pickle")
    with pytest.raises(CheckpointError, match="Cannot read checkpoint") as info:
        ckpt.load_checkpoint(tmp_path / "c.pth")
    assert "\n" not in str(info.value)
