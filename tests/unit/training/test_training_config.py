"""TrainingConfig record, presets, CLI flag mapping, pretrained loading, checkpoint helpers."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import torch

from autounet.errors import CheckpointError, ConfigError, SchemaError
from autounet.schemas.training import TrainingConfig, load_training_config, save_training_config
from autounet.training import checkpoint as ckpt


def test_reference_defaults() -> None:
    c = TrainingConfig.reference()
    assert (c.epochs, c.iterations_per_epoch, c.val_iterations) == (1000, 250, 50)
    assert (c.initial_lr, c.weight_decay, c.momentum, c.grad_clip) == (1e-2, 3e-5, 0.99, 12.0)
    assert (c.oversample_foreground, c.ema_decay, c.poly_exponent) == (0.33, 0.9, 0.9)


def test_short_budget_is_sized_by_dimensionality() -> None:
    two, three = TrainingConfig.short(2), TrainingConfig.preset("short", spatial_dims=3, epochs=5)
    assert (two.epochs, two.iterations_per_epoch, two.batch_size, two.val_iterations) == (16, 50, 8, 10)
    assert (three.epochs, three.iterations_per_epoch, three.batch_size, three.val_iterations) == (5, 12, 2, 2)
    assert two.channels_last and three.channels_last and three.initial_lr == two.initial_lr == 1e-2


def test_presets_and_overrides() -> None:
    short = TrainingConfig.preset("short", seed=3)
    assert short.epochs < 1000 and short.seed == 3
    assert TrainingConfig.preset("reference") == TrainingConfig()
    with pytest.raises(ConfigError, match="short"):
        TrainingConfig.preset("shrot")
    with pytest.raises(ConfigError, match="epochs"):
        TrainingConfig(epochs=0)
    with pytest.raises(ConfigError, match="spatial_dims"):
        TrainingConfig.preset("short", spatial_dims=4)
    with pytest.raises(ConfigError, match="device"):
        TrainingConfig(device="tpu")
    with pytest.raises(ConfigError, match="Unknown TrainingConfig field"):
        TrainingConfig().replace(epoch=3)


def test_round_trip_and_unknown_keys(tmp_path: Path) -> None:
    cfg = TrainingConfig(epochs=7, seed=1, pretrained="x.pth")
    save_training_config(tmp_path / "c.json", cfg)
    assert load_training_config(tmp_path / "c.json") == cfg
    data = cfg.to_dict()
    data["epohcs"] = 3
    with pytest.raises(SchemaError, match="epohcs"):
        TrainingConfig.from_dict(data)


def test_cli_flags_map_to_config() -> None:
    from autounet.cli import train as cli

    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    args = parser.parse_args(["4", "2d", "0", "--budget", "short", "--epochs", "3", "--lr", "0.02", "--no-compile",
                              "--deterministic", "-j", "1", "--iters-per-epoch", "9", "--val-iters", "2"])
    cfg = TrainingConfig.preset(args.budget, **cli._overrides(args))
    assert (cfg.epochs, cfg.initial_lr, cfg.compile, cfg.deterministic, cfg.workers) == (3, 0.02, False, True, 1)
    assert (cfg.iterations_per_epoch, cfg.val_iterations) == (9, 2)
    assert cfg.batch_size == TrainingConfig.short().batch_size


def test_pretrained_skips_heads_and_checks_shapes(tmp_path: Path) -> None:
    class Net(torch.nn.Module):
        def __init__(self, out: int) -> None:
            super().__init__()
            self.body = torch.nn.Conv2d(1, 4, 3)
            self.seg_layers = torch.nn.ModuleList([torch.nn.Conv2d(4, out, 1)])

    src, dst = Net(5), Net(3)
    ckpt.save_checkpoint(tmp_path / "a.pth", {"network_weights": {f"module.{k}": v for k, v in
                                                                  src.state_dict().items()}})
    copied = ckpt.load_pretrained(dst, tmp_path / "a.pth")
    assert copied == ["body.bias", "body.weight"]
    assert torch.equal(dst.body.weight, src.body.weight)
    bad = Net(3)
    bad.body = torch.nn.Conv2d(1, 8, 3)
    with pytest.raises(CheckpointError, match="body.weight"):
        ckpt.load_pretrained(bad, tmp_path / "a.pth")


def test_checkpoint_errors_and_resume_order(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="not found"):
        ckpt.load_checkpoint(tmp_path / "none.pth")
    (tmp_path / "bad.pth").write_bytes(b"garbage")
    with pytest.raises(CheckpointError, match="bad.pth"):
        ckpt.load_checkpoint(tmp_path / "bad.pth")
    assert ckpt.find_resume_checkpoint(tmp_path) is None
    for name in (ckpt.BEST, ckpt.LATEST):
        ckpt.save_checkpoint(tmp_path / name, {"current_epoch": 1})
    assert ckpt.find_resume_checkpoint(tmp_path).name == ckpt.LATEST
    assert not list(tmp_path.glob(".*tmp*"))  # atomic writes leave no temporary files
