"""The case store: chunk/block rule, atomic writes, lazy reads, properties record."""

from __future__ import annotations

import json

import numpy as np
import pytest

from autounet.errors import DatasetError, SchemaError
from autounet.io.geometry import ImageGeometry
from autounet.preprocessing import CaseProperties, CaseStore, chunk_and_block_shapes, write_case
from autounet.preprocessing.store import case_files, remove_temporary_files


def test_chunks_for_a_large_3d_patch() -> None:
    # block: 128^3 float32 is 8 MiB; halving the last tied axis first gives 32^3 = 128 KiB.
    # chunk: grows one block (32) per step on the least covered axis (ties: first axis) up to 6 MiB:
    # (64,32,32) (64,64,32) (64,64,64) ... (128,96,96) (128,128,96) = 6 MiB exactly; the next step is too big.
    blocks, chunks = chunk_and_block_shapes((1, 512, 512, 512), (128, 128, 128), 4)
    assert blocks == (1, 32, 32, 32)
    assert chunks == (1, 128, 128, 96)


def test_chunks_never_exceed_image_or_grow_the_2d_axis() -> None:
    blocks, chunks = chunk_and_block_shapes((1, 30, 60, 45), (56, 40), 2)
    assert blocks == (1, 1, 60, 45) and chunks == (1, 1, 60, 45)
    blocks, chunks = chunk_and_block_shapes((2, 40, 300, 300), (40, 56, 40), 4)
    assert blocks[0] == chunks[0] == 1
    assert all(c <= min(s, int(1.5 * p)) for c, s, p in zip(chunks[1:], (40, 300, 300), (40, 56, 40)))
    assert np.prod(blocks) * 4 <= 128 * 1024 and np.prod(chunks) * 4 <= 6 * 1024 ** 2


def _properties(case: str = "case_000", locations=None) -> CaseProperties:
    return CaseProperties(
        case_id=case, configuration="3d_fullres", plans_sha256="abc", geometry=ImageGeometry(spacing=(3.0, 1, 1)),
        original_spacing=(3.0, 1.0, 1.0), transpose_forward=(0, 1, 2), shape_before_cropping=(10, 24, 24),
        bbox_used_for_cropping=((0, 10), (1, 24), (0, 23)), shape_after_cropping_and_before_resampling=(10, 23, 23),
        spacing_after_resampling=(3.0, 1.0, 1.0), shape_after_resampling=(10, 23, 23),
        class_locations=locations if locations is not None else {
            1: np.array([[0, 1, 2, 3]], np.int64), (1, 2): np.zeros((0, 4), np.int64),
            (-1, 0, 1, 2): np.array([[0, 0, 0, 0], [0, 9, 22, 22]], np.int64)},
        annotated_key=(-1, 0, 1, 2))


@pytest.fixture
def stored(tmp_path):
    rng = np.random.default_rng(0)
    data = rng.normal(size=(2, 10, 23, 23)).astype(np.float32)
    seg = rng.integers(-1, 3, size=(1, 10, 23, 23)).astype(np.int16)
    write_case(tmp_path, data, seg, _properties(), patch_size=(8, 16, 16))
    return tmp_path, data, seg


def test_round_trip(stored) -> None:
    folder, data, seg = stored
    store = CaseStore(folder)
    assert store.case_ids() == ["case_000"] and "case_000" in store and len(store) == 1
    props = store.properties("case_000")
    expected = _properties()
    assert props.bbox_used_for_cropping == expected.bbox_used_for_cropping
    assert props.geometry == expected.geometry and props.annotated_key == (-1, 0, 1, 2)
    assert list(props.class_locations) == [1, (1, 2), (-1, 0, 1, 2)]
    for key, value in expected.class_locations.items():
        np.testing.assert_array_equal(props.class_locations[key], value)
    assert props.get("spacing") == (3.0, 1.0, 1.0) and props.get("class_locations") is props.class_locations
    full_data, full_seg = store.load("case_000")
    np.testing.assert_array_equal(full_data, data)
    np.testing.assert_array_equal(full_seg, seg)
    assert full_data.dtype == np.float32 and full_seg.dtype == np.int16


def test_lazy_patch_reads(stored) -> None:
    folder, data, seg = stored
    store = CaseStore(folder)
    arrays = store.open("case_000")
    assert arrays.data.shape == data.shape and tuple(arrays.data.chunks)[0] == 1
    window = (slice(2, 9), slice(5, 21), slice(0, 16))
    patch_data, patch_seg = store.read_patch("case_000", window)
    np.testing.assert_array_equal(patch_data, data[(slice(None), *window)])
    np.testing.assert_array_equal(patch_seg, seg[(slice(None), *window)])
    data_view, seg_view = arrays  # a tuple too (what the training loader unpacks)
    np.testing.assert_array_equal(np.asarray(data_view[:, 0]), data[:, 0])


def test_incomplete_cases_are_invisible_and_temp_files_removed(stored) -> None:
    folder, data, seg = stored
    files = case_files(folder, "case_001")
    files["data"].write_bytes(b"half written")
    (folder / ".case_001.json.abcd.tmp.json").write_text("{")
    store = CaseStore(folder)
    assert store.case_ids() == ["case_000"]
    with pytest.raises(DatasetError, match="case_001"):
        store.open("case_001")
    assert remove_temporary_files(folder) == 1
    assert not (folder / ".case_001.json.abcd.tmp.json").exists()


def test_missing_folder_and_bad_record(tmp_path, stored) -> None:
    with pytest.raises(DatasetError, match="autounet preprocess"):
        CaseStore(tmp_path / "nope")
    folder, _, _ = stored
    path = case_files(folder, "case_000")["properties"]
    record = json.loads(path.read_text(encoding="utf-8"))
    record["schema_version"] = 99
    path.write_text(json.dumps(record))
    with pytest.raises(SchemaError, match="newer"):
        CaseStore(folder).properties("case_000")


def test_overwrite_replaces_record(stored) -> None:
    folder, data, seg = stored
    write_case(folder, data[:1], seg, _properties(locations={}), patch_size=(8, 16, 16))
    store = CaseStore(folder)
    assert store.properties("case_000").class_locations == {}
    assert store.open("case_000").data.shape[0] == 1
