"""Typed artefacts: published JSON Schemas are current, one reader per artefact (also for reference files),
the training log and predict_args.json round trip, bad records give one-line errors."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from autounet.errors import SchemaError
from autounet.schemas.export_json_schemas import main as export_main
from autounet.schemas.export_json_schemas import public_schemas, render
from autounet.schemas.results import PredictArgs, load_predict_args, save_predict_args
from autounet.schemas.training_log import EpochRecord, read_training_log, write_training_log

DOCS_SCHEMAS = Path(__file__).resolve().parents[3] / "docs" / "schemas"
GOLDEN = Path(__file__).resolve().parents[2] / "data" / "golden" / "planning"


def test_published_json_schemas_are_current() -> None:
    expected = {name: render(schema) for name, schema in public_schemas().items()}
    found = {p.name: p.read_text(encoding="utf-8") for p in DOCS_SCHEMAS.glob("*.schema.json")}
    stale = sorted(n for n in expected.keys() | found.keys() if expected.get(n) != found.get(n))
    assert not stale, (f"docs/schemas is out of date for {stale}; run "
                       "`python -m autounet.schemas.export_json_schemas docs/schemas`.")


def test_export_command_writes_every_schema(tmp_path: Path) -> None:
    assert export_main([str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(public_schemas())
    plans = json.loads((tmp_path / "plans.schema.json").read_text(encoding="utf-8"))
    assert plans["properties"]["schema"] == {"const": "autounet/plans"}
    assert "configurations" in plans["required"]
    assert export_main([]) == 2


def _epoch(epoch: int, **changes: object) -> EpochRecord:
    values = {"epoch": epoch, "mean_fg_dice": 0.5, "ema_fg_dice": 0.4, "dice_per_class_or_region": [0.5, math.nan],
              "train_losses": -0.1, "val_losses": -0.2, "lrs": 0.01, "epoch_start_timestamps": 10.0,
              "epoch_end_timestamps": 12.5, "data_wait_share": 0.1, "epoch_time": 2.5}
    return EpochRecord.from_dict({**values, **changes})


def test_training_log_round_trip_and_one_reader(tmp_path: Path) -> None:
    path = tmp_path / "training_log.jsonl"
    assert read_training_log(path) == []
    write_training_log(path, [_epoch(0), _epoch(1, train_losses=None)])
    records = read_training_log(path)
    assert [r.epoch for r in records] == [0, 1]
    assert math.isnan(records[1].train_losses) and math.isnan(records[0].dice_per_class_or_region[1])
    assert "NaN" in path.read_text(encoding="utf-8")
    with path.open("a", encoding="utf-8") as fh:
        fh.write('{"epoch": 2, "mean_fg_dice": 0.1}\n')  # a truncated record
    assert len(read_training_log(path)) == 2
    with pytest.raises(SchemaError, match=r"line 3: .*missing key"):
        read_training_log(path, strict=True)


def test_predict_args_round_trip(tmp_path: Path) -> None:
    record = PredictArgs(inputs=("a.nii.gz",), model={"configuration": "2d"}, settings={"tile_step": 0.5},
                         save_probabilities=True)
    save_predict_args(tmp_path / "predict_args.json", record, provenance={"producer": "test"})
    data = json.loads((tmp_path / "predict_args.json").read_text(encoding="utf-8"))
    assert data["schema"] == "autounet/predict_args" and data["inputs"] == ["a.nii.gz"]
    assert load_predict_args(tmp_path / "predict_args.json") == record
    data["extra_key"] = 1
    with pytest.raises(SchemaError, match="unknown key.*extra_key"):
        PredictArgs.from_dict(data)


def test_plans_reader_accepts_the_reference_format(tmp_path: Path) -> None:
    from autounet.planning.store import read_plans_file

    reference = sorted(GOLDEN.glob("Dataset*/nnUNetPlans.json"))[0]
    plans = read_plans_file(reference)
    assert plans.configuration("3d_fullres").ndim == 3
    ours = tmp_path / "ours.json"
    ours.write_text(json.dumps(plans.to_dict()), encoding="utf-8")
    assert read_plans_file(ours) == plans


def test_configuration_is_validated_once_and_follows_edits() -> None:
    from autounet.planning.store import read_plans_file

    plans = read_plans_file(sorted(GOLDEN.glob("Dataset*/nnUNetPlans.json"))[0])
    first = plans.configuration("3d_fullres")
    assert plans.configuration("3d_fullres") is first  # cached, not re-validated
    plans.configurations["3d_fullres"]["batch_size"] = first.batch_size + 1
    assert plans.configuration("3d_fullres").batch_size == first.batch_size + 1


def test_bad_values_are_one_line_errors() -> None:
    from autounet.schemas.plans import NetworkSpec

    with pytest.raises(SchemaError, match=r"^net: features_per_stage\.1 Input should be a valid integer") as info:
        NetworkSpec.from_dict({"name": "plain_unet", "features_per_stage": [1, "x"], "kernel_sizes": [[3]],
                               "strides": [[1]], "blocks_per_stage": [1], "convs_per_stage_decoder": []}, where="net")
    assert "\n" not in str(info.value)
