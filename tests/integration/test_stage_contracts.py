"""Each stage enforces the data contract it relies on (issue 13, item 3), alone and inside ``autounet run``.

A raw case that ``verify`` refuses (a label value dataset.json does not declare, in ONE case only; a NaN voxel;
a label whose geometry differs from its image) is refused by ``plan`` (fingerprint), ``preprocess`` and ``run``
with one line naming the case, the file and the problem (exit 1). Training refuses a stored case whose
segmentation holds an undeclared value before the loss sees it.
"""

from __future__ import annotations

import dataclasses
import shutil
from pathlib import Path

import numpy as np
import pytest

from autounet.cli import main
from autounet.io import read_images, read_segmentation, write_image, write_segmentation
from autounet.preprocessing import CaseStore
from autounet.preprocessing.store import write_case
from autounet.testing import make_synthetic_dataset
from autounet.workspace import Workspace

pytestmark = pytest.mark.integration
DATASET = "Dataset981_Contract"
CONFIG = "3d_fullres"
BAD = "case_003"
#: what the one-line error must contain for each defect: (file name, words of the problem)
DEFECTS = {
    "undeclared_label": (f"{BAD}.nii.gz", "label values [3] are not declared"),
    "nan": (f"{BAD}_0000.nii.gz", "NaN"),
    "geometry": (f"{BAD}.nii.gz", "origin"),
}


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A workspace with a valid 5-case dataset, planned and preprocessed for 3d_fullres."""
    root = tmp_path_factory.mktemp("contract") / "ws"
    ws = Workspace.at(root).ensure()
    make_synthetic_dataset(ws.raw / DATASET, n_cases=5, shape=(8, 24, 24), spacing=(2.0, 1.0, 1.0), seed=5)
    assert main(["plan", DATASET, "--workspace", str(root), "-j", "1", "--quiet"]) == 0
    assert main(["preprocess", DATASET, "-c", CONFIG, "--workspace", str(root), "-j", "1", "--quiet"]) == 0
    return root


def _copy(prepared: Path, tmp_path: Path) -> Path:
    root = tmp_path / "ws"
    shutil.copytree(prepared, root, symlinks=True)
    return root


def _break(root: Path, defect: str) -> None:
    """Damage case ``BAD`` of the raw dataset the way ``defect`` says."""
    raw = root / "raw" / DATASET
    label, image = raw / "labelsTr" / f"{BAD}.nii.gz", raw / "imagesTr" / f"{BAD}_0000.nii.gz"
    if defect == "undeclared_label":
        seg, geometry = read_segmentation(label)
        seg = seg.copy()
        seg[0, 0, 0, 0] = 3
        write_segmentation(seg[0], label, geometry)
    elif defect == "nan":
        data, geometry = read_images([image])
        data = data.copy()
        data[0, 2, 5, 5] = np.nan
        write_image(data[0], image, geometry)
    else:
        seg, geometry = read_segmentation(label)
        write_segmentation(seg[0], label, dataclasses.replace(geometry, origin=(0.0, 0.0, 5.0)))


def _assert_refused(code: int, err: str, defect: str) -> None:
    file, words = DEFECTS[defect]
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert code == 1, err
    assert "Traceback" not in err
    line = next((x for x in lines if BAD in x), "")
    assert file in line and words in line, err


@pytest.mark.parametrize("defect", sorted(DEFECTS))
def test_plan_refuses(prepared: Path, tmp_path: Path, defect: str, capsys: pytest.CaptureFixture[str]) -> None:
    root = _copy(prepared, tmp_path)
    _break(root, defect)
    capsys.readouterr()
    code = main(["plan", DATASET, "--workspace", str(root), "-j", "1", "--quiet"])
    err = capsys.readouterr().err
    _assert_refused(code, err, defect)
    assert len(err.strip().splitlines()) == 1, err


@pytest.mark.parametrize("defect", sorted(DEFECTS))
def test_preprocess_refuses(prepared: Path, tmp_path: Path, defect: str,
                            capsys: pytest.CaptureFixture[str]) -> None:
    root = _copy(prepared, tmp_path)
    folder = Workspace.at(root).preprocessed_data(DATASET, f"nnUNetPlans_{CONFIG}")
    shutil.rmtree(folder)  # everything must be redone, the damaged case included
    _break(root, defect)
    capsys.readouterr()
    code = main(["preprocess", DATASET, "-c", CONFIG, "--workspace", str(root), "-j", "1", "--quiet"])
    err = capsys.readouterr().err
    _assert_refused(code, err, defect)
    assert len(err.strip().splitlines()) == 1, err
    assert BAD not in CaseStore(folder).case_ids()


@pytest.mark.parametrize("defect", sorted(DEFECTS))
def test_run_refuses(prepared: Path, tmp_path: Path, defect: str, capsys: pytest.CaptureFixture[str]) -> None:
    root = _copy(prepared, tmp_path)
    _break(root, defect)
    capsys.readouterr()
    code = main(["run", DATASET, "--workspace", str(root), "-c", CONFIG, "-f", "0", "--epochs", "1",
                 "--iters-per-epoch", "1", "-j", "1", "--quiet"])
    _assert_refused(code, capsys.readouterr().err, defect)
    assert not (Workspace.at(root).results / DATASET).exists()


def _store_undeclared_label(root: Path) -> None:
    """Rewrite case BAD in the store with a label value 3 in one voxel (as a store made from bad data would be)."""
    store = CaseStore(Workspace.at(root).preprocessed_data(DATASET, f"nnUNetPlans_{CONFIG}"))
    data, seg = store.load(BAD)
    seg = seg.copy()
    seg[0, 1, 1, 1] = 3
    write_case(store.folder, data, seg, store.properties(BAD), patch_size=(8, 24, 24))


def test_train_refuses_undeclared_label_in_store(prepared: Path, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    root = _copy(prepared, tmp_path)
    _store_undeclared_label(root)
    capsys.readouterr()
    code = main(["train", DATASET, CONFIG, "all", "--workspace", str(root), "--epochs", "1", "--iters-per-epoch",
                 "1", "--val-iters", "1", "-j", "0", "--no-val", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 1, err
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert BAD in err and "label values [3]" in err


def test_run_refuses_undeclared_label_in_store(prepared: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """Inside ``run`` the raw data passes verify; training still refuses the stored case (named) with exit 1."""
    root = _copy(prepared, tmp_path)
    _store_undeclared_label(root)
    capsys.readouterr()
    code = main(["run", DATASET, "--workspace", str(root), "-c", CONFIG, "-f", "0", "--epochs", "1",
                 "--iters-per-epoch", "1", "-j", "1", "--quiet"])
    err = capsys.readouterr().err
    assert code == 1, err
    assert "Traceback" not in err and BAD in err and "label values [3]" in err


# ---- the case store checks itself (issue 13, item 5) -------------------------------------------------------------
def _store_folder(root: Path) -> Path:
    return Workspace.at(root).preprocessed_data(DATASET, f"nnUNetPlans_{CONFIG}")


def _stamps(folder: Path) -> dict[str, tuple[int, int]]:
    """``(inode, mtime_ns)`` of every stored file."""
    return {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in folder.iterdir() if p.is_file()}


def _damage(folder: Path, how: str) -> None:
    data = folder / f"{BAD}.b2nd"
    if how == "truncate":
        data.write_bytes(data.read_bytes()[: data.stat().st_size // 2])
    elif how == "corrupt_chunk":
        raw = bytearray(data.read_bytes())
        middle = len(raw) // 2
        raw[middle: middle + 64] = bytes(64)  # zero 64 bytes in the middle of the compressed chunks
        data.write_bytes(bytes(raw))
    elif how == "delete_seg":
        (folder / f"{BAD}_seg.b2nd").unlink()
    else:
        (folder / f"{BAD}_locations.npz").unlink()


@pytest.mark.parametrize("how", ["truncate", "corrupt_chunk", "delete_seg", "delete_locations"])
def test_preprocess_redoes_exactly_the_damaged_case(prepared: Path, tmp_path: Path, how: str,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    root = _copy(prepared, tmp_path)
    folder = _store_folder(root)
    before = _stamps(folder)
    intact = CaseStore(folder).load(BAD)
    _damage(folder, how)
    capsys.readouterr()
    assert main(["preprocess", DATASET, "-c", CONFIG, "--workspace", str(root), "-j", "1"]) == 0
    assert f"{CONFIG}: 1 case(s) preprocessed" in capsys.readouterr().out
    after = _stamps(folder)
    for name, stamp in before.items():
        if not name.startswith(f"{BAD}.") and not name.startswith(f"{BAD}_"):
            assert after[name] == stamp, f"{name} was rewritten"
    store = CaseStore(folder)
    store.check(BAD, full=True)
    again = store.load(BAD)
    assert np.array_equal(again[0], intact[0]) and np.array_equal(again[1], intact[1])


def test_train_names_the_corrupted_case_and_the_repair(prepared: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    root = _copy(prepared, tmp_path)
    _damage(_store_folder(root), "corrupt_chunk")
    capsys.readouterr()
    code = main(["train", DATASET, CONFIG, "all", "--workspace", str(root), "--epochs", "1", "--iters-per-epoch",
                 "1", "--val-iters", "1", "-j", "0", "--no-val", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert f"'{BAD}'" in err and f"autounet preprocess {DATASET} -c {CONFIG}" in err


def test_train_names_an_unreadable_case_without_checksums(prepared: Path, tmp_path: Path,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """A record without checksums (older version) and a truncated array: the decode error names the case."""
    import json

    root = _copy(prepared, tmp_path)
    folder = _store_folder(root)
    record_path = folder / f"{BAD}.json"
    record = json.loads(record_path.read_text(encoding="utf-8"))
    del record["files"]
    record_path.write_text(json.dumps(record), encoding="utf-8")
    _damage(folder, "truncate")
    capsys.readouterr()
    code = main(["train", DATASET, CONFIG, "all", "--workspace", str(root), "--epochs", "1", "--iters-per-epoch",
                 "6", "--val-iters", "1", "-j", "0", "--no-val", "--seed", "0", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 1 and len(err.splitlines()) == 1 and "Traceback" not in err, err
    assert f"'{BAD}'" in err and f"autounet preprocess {DATASET} -c {CONFIG}" in err
