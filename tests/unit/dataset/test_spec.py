"""DatasetSpec: the reference's dataset.json, typed; unknown keys kept; one reader, one writer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autounet.errors import SchemaError
from autounet.schemas.dataset import DatasetSpec, load_dataset_spec, save_dataset_spec

REFERENCE_STYLE = {
    "channel_names": {"0": "T2", "1": "ADC"},
    "labels": {"background": 0, "PZ": 1, "TZ": 2},
    "numTraining": 32,
    "file_ending": ".nii.gz",
    "name": "Prostate",
    "description": "Prostate transitional zone and peripheral zone segmentation",
    "licence": "CC-BY-SA 4.0",
    "overwrite_image_reader_writer": "SimpleITKIO",
}


def test_round_trip_keeps_unknown_keys_and_reference_format(tmp_path: Path) -> None:
    (tmp_path / "dataset.json").write_text(json.dumps(REFERENCE_STYLE))
    spec = load_dataset_spec(tmp_path)
    assert spec.num_channels == 2 and spec.channel_list() == ("T2", "ADC")
    assert spec.num_training == 32 and spec.name == "Prostate"
    assert spec.extra["licence"] == "CC-BY-SA 4.0"
    assert spec.overwrite_image_reader_writer == "SimpleITKIO"
    save_dataset_spec(spec, tmp_path / "out.json")
    written = json.loads((tmp_path / "out.json").read_text(encoding="utf-8"))
    assert written == REFERENCE_STYLE
    assert "schema" not in written


def test_regions_and_explicit_listing(tmp_path: Path) -> None:
    data = {"channel_names": {"0": "CT"}, "labels": {"background": 0, "whole": [1, 2], "core": 2},
            "regions_class_order": [1, 2], "numTraining": 1, "file_ending": ".nrrd",
            "dataset": {"a": {"images": ["imgs/a_0.nrrd"], "label": "lbl/a.nrrd"}}}
    spec = DatasetSpec.from_dict(data)
    assert spec.labels["whole"] == (1, 2) and spec.regions_class_order == (1, 2)
    assert spec.dataset is not None and spec.dataset["a"].images == ("imgs/a_0.nrrd",)
    assert DatasetSpec.from_dict(spec.to_dict()) == spec
    assert spec.to_dict()["labels"]["whole"] == [1, 2]


def test_legacy_modality_and_literal_none_reader() -> None:
    spec = DatasetSpec.from_dict({"modality": {"0": "MRI"}, "labels": {"background": 0}, "numTraining": 0,
                                  "file_ending": ".nii.gz", "overwrite_image_reader_writer": "None"})
    assert spec.channel_names == {"0": "MRI"}
    assert spec.overwrite_image_reader_writer is None


@pytest.mark.parametrize(("change", "match"), [
    ({"numTraining": None}, "numTraining must be an integer"),
    ({"file_ending": "nii.gz"}, "file_ending must be a string starting with '.'"),
    ({"channel_names": {"1": "CT"}}, "without gaps"),
    ({"labels": {"background": 0, "x": "one"}}, "label 'x' must be an integer"),
    ({"labels": {"background": 0, "x": []}}, "empty region"),
])
def test_invalid_values_are_named(change: dict, match: str) -> None:
    with pytest.raises(SchemaError, match=match):
        DatasetSpec.from_dict({**REFERENCE_STYLE, **change})


def test_missing_keys_are_listed(tmp_path: Path) -> None:
    with pytest.raises(SchemaError, match="missing key.*numTraining, file_ending"):
        DatasetSpec.from_dict({"channel_names": {"0": "CT"}, "labels": {"background": 0}})
    with pytest.raises(SchemaError, match="not found"):
        load_dataset_spec(tmp_path / "dataset.json")
    (tmp_path / "dataset.json").write_text("{ not json")
    with pytest.raises(SchemaError, match="not valid JSON"):
        load_dataset_spec(tmp_path)
