"""The case store checks itself: sizes, modification times and BLAKE2b checksums recorded with each case."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from autounet.errors import DatasetError
from autounet.io.geometry import ImageGeometry
from autounet.preprocessing import CaseProperties, CaseStore, write_case
from autounet.preprocessing.store import case_files, check_case, checksum, label_values


def _props(case: str = "c0") -> CaseProperties:
    return CaseProperties(
        case_id=case, configuration="3d_fullres", plans_sha256="abc", geometry=ImageGeometry(spacing=(1.0, 1, 1)),
        original_spacing=(1.0, 1.0, 1.0), transpose_forward=(0, 1, 2), shape_before_cropping=(12, 20, 20),
        bbox_used_for_cropping=((0, 12), (0, 20), (0, 20)), shape_after_cropping_and_before_resampling=(12, 20, 20),
        spacing_after_resampling=(1.0, 1.0, 1.0), shape_after_resampling=(12, 20, 20),
        class_locations={1: np.array([[0, 1, 2, 3]], np.int64)})


@pytest.fixture
def store(tmp_path) -> CaseStore:
    rng = np.random.default_rng(1)
    data = rng.normal(size=(1, 12, 20, 20)).astype(np.float32)
    seg = rng.integers(0, 3, size=(1, 12, 20, 20)).astype(np.int16)
    seg[0, 0] = -1
    write_case(tmp_path, data, seg, _props(), patch_size=(8, 8, 8))
    return CaseStore(tmp_path)


def _flip_middle_byte(path, *, keep_mtime: bool = False) -> None:
    st = path.stat()
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    path.write_bytes(bytes(raw))
    if keep_mtime:
        os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def test_label_values_skip_the_outside_marker() -> None:
    seg = np.array([[[[-1, 0, 2], [2, 5, -1]]]], np.int16)
    assert label_values(seg) == (0, 2, 5)
    assert label_values(np.zeros((1, 0, 0, 0), np.int16)) == ()


def test_record_lists_files_and_labels(store: CaseStore) -> None:
    props = store.properties("c0")
    assert props.label_values == (0, 1, 2)
    files = case_files(store.folder, "c0")
    for kind in ("data", "seg", "locations"):
        rec = props.files[kind]
        assert rec["size"] == files[kind].stat().st_size and rec["blake2b"] == checksum(files[kind])
    raw = json.loads(files["properties"].read_text(encoding="utf-8"))
    assert CaseProperties.from_json_dict(raw, class_locations=props.class_locations).files == props.files
    assert check_case(store.folder, "c0", props.files) is None
    store.check("c0")


@pytest.mark.parametrize("damage", ["truncate", "flip", "delete_seg", "delete_locations"])
def test_damage_is_found_and_named(store: CaseStore, damage: str) -> None:
    files = case_files(store.folder, "c0")
    records = store.properties("c0").files
    if damage == "truncate":
        files["data"].write_bytes(files["data"].read_bytes()[:-100])
        words = "bytes where"
    elif damage == "flip":
        _flip_middle_byte(files["data"])
        words = "checksum"
    else:
        files[damage.split("_")[1]].unlink()
        words = "missing"
    problem = check_case(store.folder, "c0", records)
    assert problem is not None and words in problem
    with pytest.raises(DatasetError, match=r"case 'c0'.*autounet preprocess"):
        store.check("c0")


def test_same_size_and_time_needs_the_full_check(store: CaseStore) -> None:
    files = case_files(store.folder, "c0")
    _flip_middle_byte(files["seg"], keep_mtime=True)
    records = store.properties("c0").files
    assert check_case(store.folder, "c0", records) is None  # documented: size+mtime only by default
    assert "checksum" in (check_case(store.folder, "c0", records, full=True) or "")


def test_record_without_checksums_counts_as_unchecked(store: CaseStore) -> None:
    assert "older version" in (check_case(store.folder, "c0", None) or "")
