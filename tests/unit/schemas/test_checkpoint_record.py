"""The typed checkpoint record: round trip, the reference's checkpoint, older files and malformed fields."""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
import torch

from autounet.errors import CheckpointError
from autounet.schemas.checkpoint import SCHEMA, CheckpointRecord, InitArgs, checkpoint_json_schema
from autounet.schemas.training import training_config
from autounet.training import checkpoint as ckpt

GOLDEN = Path(__file__).resolve().parents[2] / "data" / "golden" / "reference_model"


def _trained_state() -> dict:
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)
    net(torch.ones(1, 3)).sum().backward()
    opt.step()
    return {"network_weights": net.state_dict(), "optimizer_state": opt.state_dict()}


def test_round_trip_keeps_every_field(tmp_path: Path) -> None:
    config = training_config("short", epochs=3)
    record = CheckpointRecord(
        **_trained_state(), grad_scaler_state={"scale": 65536.0, "_growth_tracker": 0},
        logging={"ema_decay": 0.8, "values": {"train_losses": [1.0, 0.5]}}, best_ema=0.25, current_epoch=2,
        init_args=InitArgs(configuration="2d", fold=0, device="cpu"), trainer_name="nnUNetTrainer",
        inference_allowed_mirroring_axes=(0, 1), iteration=3, epoch_train_losses=[0.4, float("nan")],
        epoch_start=12.5, epoch_wait=0.5, seed=7, rng_state=ckpt.rng_state(), training_config=config)
    ckpt.save_checkpoint(tmp_path / "c.pth", record)
    raw = torch.load(tmp_path / "c.pth", weights_only=False)
    assert raw["schema"] == SCHEMA and raw["schema_version"] == 1 and raw["_best_ema"] == 0.25
    back = ckpt.load_checkpoint(tmp_path / "c.pth")
    assert back.training_config == config and back.configuration == "2d" and back.init_args.fold == 0
    assert (back.current_epoch, back.iteration, back.seed, back.best_ema) == (2, 3, 7, 0.25)
    assert back.epoch_train_losses[0] == 0.4 and np.isnan(back.epoch_train_losses[1])
    assert back.logging.as_dict() == {"ema_decay": 0.8, "values": {"train_losses": [1.0, 0.5]}}
    assert back.inference_allowed_mirroring_axes == (0, 1) and back.grad_scaler_state["scale"] == 65536.0
    for key, value in record.network_weights.items():
        assert torch.equal(back.network_weights[key], value)
    opt = torch.optim.SGD(torch.nn.Linear(3, 2).parameters(), lr=0.1, momentum=0.9)
    opt.load_state_dict(back.optimizer_state.as_dict())  # the optimiser accepts what the record gives back
    assert torch.equal(opt.state_dict()["state"][0]["momentum_buffer"],
                       record.optimizer_state.state[0]["momentum_buffer"])
    ckpt.set_rng_state(record.rng_state)
    first = (random.random(), float(np.random.rand()), float(torch.rand(1)))
    ckpt.set_rng_state(back.rng_state)  # the loaded states continue exactly as the saved ones
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == first


def test_reference_checkpoint_reads_as_a_record(tmp_path: Path) -> None:
    record = ckpt.load_checkpoint(next(GOLDEN.glob("*/fold_0/checkpoint_final.pth")))
    assert record.trainer_name == "nnUNetTrainer" and record.current_epoch == 1 and record.best_ema == 0.0
    assert record.configuration == "2d" and record.init_args.device == "cpu" and record.init_args.plans
    assert record.inference_allowed_mirroring_axes == (0, 1) and record.training_config is None
    assert record.logging.ema_decay == 0.9 and len(record.logging.values["train_losses"]) == 1  # its flat log
    assert set(record.optimizer_state.as_dict()) == {"state", "param_groups"}
    # the reference form written back holds only the reference's keys, and reads again
    slim = record.payload(reference=True)
    assert "schema" not in slim and "iteration" not in slim and slim["current_epoch"] == 1
    torch.save(slim, tmp_path / "slim.pth")
    assert ckpt.load_checkpoint(tmp_path / "slim.pth").trainer_name == "nnUNetTrainer"


def test_older_autounet_checkpoint_loads(tmp_path: Path) -> None:
    """A version-1 file as the previous writer produced it (a plain dict, training config as its JSON record)."""
    config = training_config("short")
    old = {"schema": SCHEMA, "schema_version": 1, **_trained_state(), "grad_scaler_state": None,
           "logging": {"ema_decay": 0.9, "values": {"mean_fg_dice": [np.float64(0.5)]}},
           "_best_ema": np.float64(0.5), "current_epoch": 4, "iteration": 0, "epoch_train_losses": [],
           "epoch_start": None, "epoch_wait": 0.0, "seed": 11,
           "rng_state": {"torch": torch.get_rng_state(), "numpy": np.random.get_state(), "python": random.getstate()},
           "training_config": config.to_dict(),
           "init_args": {"plans": {}, "configuration": "2d", "fold": "all", "dataset_json": {}, "device": "cpu"},
           "trainer_name": "nnUNetTrainer", "inference_allowed_mirroring_axes": (0, 1)}
    torch.save(old, tmp_path / "old.pth")
    record = ckpt.load_checkpoint(tmp_path / "old.pth")
    assert record.training_config == config and record.init_args.fold == "all" and record.seed == 11
    ckpt.save_checkpoint(tmp_path / "new.pth", record)
    new = torch.load(tmp_path / "new.pth", weights_only=False)
    assert set(new) == set(old) and new["training_config"] == old["training_config"]


def test_headerless_state_dict_is_the_weights(tmp_path: Path) -> None:
    torch.save(torch.nn.Linear(2, 2).state_dict(), tmp_path / "w.pth")
    record = ckpt.load_checkpoint(tmp_path / "w.pth")
    assert set(record.network_weights) == {"weight", "bias"} and record.current_epoch is None


@pytest.mark.parametrize(("change", "field"), [
    ({"network_weights": {"w": "not a tensor"}}, "network_weights.w"),
    ({"current_epoch": "three"}, "current_epoch"),
    ({"inference_allowed_mirroring_axes": ("x",)}, "inference_allowed_mirroring_axes.0"),
    ({"optimizer_state": {"state": {}}}, "optimizer_state.param_groups"),
    ({"rng_state": {"torch": [1, 2]}}, "rng_state.torch"),
    ({"training_config": {"schema": "autounet/training_config", "schema_version": 2, "recipe": {"epochs": 0}}},
     "training_config"),
    ({"surprise": 1}, "surprise"),
])
def test_malformed_field_is_one_clear_error(tmp_path: Path, change: dict, field: str) -> None:
    content = {"schema": SCHEMA, "schema_version": 1, "network_weights": {"w": torch.zeros(1)}, **change}
    torch.save(content, tmp_path / "bad.pth")
    with pytest.raises(CheckpointError) as info:
        ckpt.load_checkpoint(tmp_path / "bad.pth")
    message = str(info.value)
    assert str(tmp_path / "bad.pth") in message and field in message and "\n" not in message, message


def test_header_problems(tmp_path: Path) -> None:
    torch.save({"schema": SCHEMA, "schema_version": 99, "network_weights": {}}, tmp_path / "new.pth")
    with pytest.raises(CheckpointError, match="newer than this autounet"):
        ckpt.load_checkpoint(tmp_path / "new.pth")
    torch.save({"current_epoch": 1}, tmp_path / "none.pth")
    with pytest.raises(CheckpointError, match="missing key network_weights"):
        ckpt.load_checkpoint(tmp_path / "none.pth")
    with pytest.raises(CheckpointError, match="unknown key"):
        ckpt.save_checkpoint(tmp_path / "x.pth", {"network_weights": {}, "axes": (0,)})
    assert not (tmp_path / "x.pth").exists()


def test_resuming_an_inference_only_checkpoint_is_refused(tmp_path: Path) -> None:
    from autounet.training.loop import restore

    record = CheckpointRecord(network_weights={}, trainer_name="t")
    with pytest.raises(CheckpointError, match="inference-only"):
        restore(None, record)  # type: ignore[arg-type]


def test_json_schema_lists_the_fields() -> None:
    schema = checkpoint_json_schema()
    assert {"network_weights", "_best_ema", "rng_state", "training_config", "schema"} <= set(schema["properties"])
    assert "network_weights" in schema["required"] and "provenance" not in schema["properties"]
