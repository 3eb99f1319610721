"""Training settings (recipe + runtime), budgets, the record and its migration, CLI flags, components by name,
pretrained loading, checkpoint helpers."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from autounet.errors import CheckpointError, ConfigError, SchemaError
from autounet.schemas.training import (
    RuntimeSettings,
    TrainingConfig,
    TrainingRecipe,
    load_training_config,
    save_training_config,
    split_settings,
    training_config,
)
from autounet.training import checkpoint as ckpt
from autounet.training import components


def test_reference_defaults() -> None:
    c = training_config().recipe
    assert (c.epochs, c.iterations_per_epoch, c.val_iterations) == (1000, 250, 50)
    assert (c.initial_lr, c.grad_clip, c.optimizer, c.schedule, c.loss) == (1e-2, 12.0, "sgd", "poly", "dice_ce")
    assert (c.oversample_foreground, c.ema_decay) == (0.33, 0.9)
    assert components.parameters(components.OPTIMIZERS, "sgd") == {"momentum": 0.99, "weight_decay": 3e-5,
                                                                   "nesterov": True}
    assert components.parameters(components.SCHEDULES, "poly") == {"exponent": 0.9}


def test_short_budget_is_sized_by_dimensionality() -> None:
    two, three = training_config("short"), training_config("short", spatial_dims=3, epochs=5)
    assert (two.recipe.epochs, two.recipe.iterations_per_epoch, two.recipe.batch_size,
            two.recipe.val_iterations) == (16, 50, 8, 10)
    assert (three.recipe.epochs, three.recipe.iterations_per_epoch, three.recipe.batch_size,
            three.recipe.val_iterations) == (5, 12, 2, 2)
    assert not two.runtime.channels_last and not three.runtime.channels_last  # contiguous: fastest with bf16 on a CPU
    assert three.recipe.initial_lr == two.recipe.initial_lr == 1e-2


def test_budgets_and_overrides() -> None:
    short = training_config("short", seed=3)
    assert short.recipe.epochs < 1000 and short.runtime.seed == 3
    assert training_config("reference") == training_config("full") == TrainingConfig()
    with pytest.raises(ConfigError, match="short"):
        training_config("shrot")
    with pytest.raises(ConfigError, match="epochs"):
        TrainingRecipe(epochs=0)
    with pytest.raises(ConfigError, match="spatial_dims"):
        training_config("short", spatial_dims=4)
    with pytest.raises(ConfigError, match="epoch.*Did you mean 'epochs'"):
        TrainingConfig().replace(epoch=3)


@pytest.mark.parametrize(("make", "message"), [
    (lambda: TrainingRecipe(epochs=0), "epochs must be >= 1, got 0."),
    (lambda: TrainingRecipe(val_iterations=-1), "val_iterations must be >= 0, got -1."),
    (lambda: TrainingRecipe(batch_size=0), "batch_size must be >= 1, got 0."),
    (lambda: TrainingRecipe(oversample_foreground=1.5), "oversample_foreground must be <= 1.0, got 1.5."),
    (lambda: TrainingRecipe(ema_decay=1.0), "ema_decay must be < 1.0, got 1.0."),
    (lambda: TrainingRecipe(initial_lr=0.0), "initial_lr must be > 0.0, got 0.0."),
    (lambda: TrainingRecipe(grad_clip=-1.0), "grad_clip must be > 0.0, got -1.0."),
    (lambda: TrainingRecipe(optimizer_params=[("momentum", 0.9)]), "optimizer_params: Input should be a valid "
                                                                   "dictionary"),
    (lambda: TrainingRecipe(epochs="many"), "epochs: Input should be a valid integer"),
    (lambda: RuntimeSettings(prefetch=0), "prefetch must be >= 1, got 0."),
    (lambda: RuntimeSettings(threads=0), "threads must be >= 1, got 0."),
    (lambda: RuntimeSettings(checkpoint_every=-2), "checkpoint_every must be >= 0, got -2."),
    (lambda: RuntimeSettings(device="gpu"), "device must be auto, cpu, mps, cuda or cuda:N, got 'gpu'."),
    (lambda: RuntimeSettings(colour=True), "Unknown training setting 'colour'."),
    (lambda: TrainingConfig().replace(loader_threads=-1), "loader_threads must be >= 0, got -1."),
    (lambda: training_config("short", ema_decay=2), "ema_decay must be < 1.0, got 2."),
])
def test_validation_errors_name_the_setting(make, message: str) -> None:
    """pydantic validates the settings; every problem is one ConfigError line naming the setting."""
    with pytest.raises(ConfigError) as info:
        make()
    assert str(info.value).startswith(message) and "\n" not in str(info.value), str(info.value)


def test_bad_record_is_a_schema_error_naming_file_and_setting(tmp_path: Path) -> None:
    data = training_config().to_dict()
    data["runtime"]["prefetch"] = 0
    (tmp_path / "c.json").write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(SchemaError, match=r"c\.json.*prefetch must be >= 1, got 0"):
        load_training_config(tmp_path / "c.json")


def test_settings_stay_dataclasses_for_flag_generation() -> None:
    import dataclasses

    names = [f.name for f in dataclasses.fields(TrainingRecipe)]
    assert names[:3] == ["epochs", "iterations_per_epoch", "val_iterations"]
    assert dataclasses.fields(TrainingRecipe)[0].metadata["flag"] == "--epochs"
    assert dataclasses.replace(TrainingRecipe(), epochs=3).epochs == 3
    with pytest.raises(ConfigError, match="epochs must be >= 1"):
        dataclasses.replace(TrainingRecipe(), epochs=0)  # replace validates too
    with pytest.raises(dataclasses.FrozenInstanceError):
        TrainingRecipe().epochs = 3  # type: ignore[misc]


@pytest.mark.parametrize("device", ["auto", "cpu", "cuda", "cuda:0", "cuda:12", "mps"])
def test_device_names(device: str) -> None:
    assert RuntimeSettings(device=device).device == device


@pytest.mark.parametrize("device", ["tpu", "cuda:", "cuda:x", "gpu:0", ""])
def test_bad_device_names(device: str) -> None:
    with pytest.raises(ConfigError, match="cuda:N"):
        RuntimeSettings(device=device)


def test_settings_split_into_recipe_and_runtime() -> None:
    recipe, runtime = split_settings({"epochs": 3, "device": "cuda:1", "optimizer": "adamw", "workers": 0})
    assert recipe == {"epochs": 3, "optimizer": "adamw"}
    assert runtime == {"device": "cuda:1", "loader_threads": 0}  # "workers" is the earlier name


def test_round_trip_and_unknown_keys(tmp_path: Path) -> None:
    cfg = training_config(epochs=7, seed=1, pretrained="x.pth", optimizer="adamw",
                          optimizer_params={"weight_decay": 0.05})
    save_training_config(tmp_path / "c.json", cfg)
    assert load_training_config(tmp_path / "c.json") == cfg
    data = cfg.to_dict()
    data["recipe"]["epohcs"] = 3
    with pytest.raises(SchemaError, match="epohcs"):
        TrainingConfig.from_dict(data)


def test_version_1_record_is_migrated(tmp_path: Path) -> None:
    flat = {"schema": "autounet/training_config", "schema_version": 1, "epochs": 5, "momentum": 0.9,
            "weight_decay": 1e-4, "poly_exponent": 0.8, "device": "cpu", "workers": 3, "trainer_name": "T",
            "initial_lr": 0.1}
    (tmp_path / "old.json").write_text(json.dumps(flat), encoding="utf-8")
    cfg = load_training_config(tmp_path / "old.json")
    assert cfg.recipe == TrainingRecipe(epochs=5, initial_lr=0.1, trainer_name="T",
                                        optimizer_params={"momentum": 0.9, "weight_decay": 1e-4},
                                        schedule_params={"exponent": 0.8})
    assert cfg.runtime == RuntimeSettings(device="cpu", loader_threads=3)


def test_default_components_are_the_reference_recipe() -> None:
    net = torch.nn.Linear(3, 2)
    recipe = training_config().recipe
    opt = components.build_optimizer(recipe, net.parameters())
    assert isinstance(opt, torch.optim.SGD)
    group = opt.param_groups[0]
    assert (group["lr"], group["momentum"], group["nesterov"], group["weight_decay"]) == (1e-2, 0.99, True, 3e-5)
    lr_at = components.build_schedule(recipe)
    assert lr_at(0) == 1e-2 and lr_at(500) == pytest.approx(1e-2 * 0.5 ** 0.9)


def test_adamw_is_selected_by_name_with_parameters() -> None:
    net = torch.nn.Linear(3, 2)
    recipe = training_config(optimizer="adamw", initial_lr=1e-3,
                             optimizer_params={"weight_decay": 0.05, "betas": [0.8, 0.9]}).recipe
    opt = components.build_optimizer(recipe, net.parameters())
    assert isinstance(opt, torch.optim.AdamW)
    group = opt.param_groups[0]
    assert (group["lr"], group["weight_decay"], group["betas"]) == (1e-3, 0.05, (0.8, 0.9))
    before = net.weight.detach().clone()
    net(torch.ones(4, 3)).sum().backward()
    opt.step()
    assert not torch.equal(before, net.weight)


def test_schedule_and_loss_by_name() -> None:
    recipe = training_config(schedule="constant", epochs=10, loss_params={"weight_ce": 0.0}).recipe
    assert [components.build_schedule(recipe)(e) for e in (0, 5, 9)] == [1e-2] * 3

    class Labels:
        has_regions, ignore_label = False, None

    loss = components.build_loss(recipe, Labels(), batch_dice=False, deep_supervision_scales=None, ddp=False,
                                 compiled=False)
    assert loss.weight_ce == 0.0 and loss.weight_dice == 1.0


def test_unknown_components_and_parameters_fail_early() -> None:
    with pytest.raises(ConfigError, match="Unknown optimiser 'adamm'. Did you mean 'adamw'"):
        components.check_recipe(training_config(optimizer="adamm").recipe)
    with pytest.raises(ConfigError, match="Unknown parameter.*momentun.*of optimiser 'sgd'.*momentum=0.99"):
        components.check_recipe(training_config(optimizer_params={"momentun": 0.9}).recipe)
    with pytest.raises(ConfigError, match="learning-rate schedule 'cosine'"):
        components.check_recipe(training_config(schedule="cosine").recipe)


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
        ckpt.save_checkpoint(tmp_path / name, {"network_weights": {"w": torch.zeros(1)}, "current_epoch": 1})
    assert ckpt.find_resume_checkpoint(tmp_path).name == ckpt.LATEST
    assert not list(tmp_path.glob(".*tmp*"))  # atomic writes leave no temporary files
