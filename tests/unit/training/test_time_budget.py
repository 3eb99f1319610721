"""--time-budget: durations, the derived schedule, the guard (fake clock), measuring a run, budget splits."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from autounet.errors import ConfigError
from autounet.training import checkpoint as ckpt
from autounet.training import time_budget as tb
from autounet.training.loop import fit


class FakeClock:
    def __init__(self, t: float = 1000.0) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        self.t += seconds


@pytest.mark.parametrize(("text", "seconds"), [("40m", 2400), ("8h", 28800), ("1h30m", 5400), ("90s", 90),
                                               ("2.5h", 9000), (" 1d ", 86400), ("10M", 600)])
def test_parse_duration(text: str, seconds: float) -> None:
    assert tb.parse_duration(text) == seconds


@pytest.mark.parametrize("text", ["", "40", "m", "40 minutes", "-5m", "0m", "1x", "5m40"])
def test_parse_duration_rejects(text: str) -> None:
    with pytest.raises(ConfigError, match="duration"):
        tb.parse_duration(text)


def test_format_duration() -> None:
    assert tb.format_duration(12.34) == "12.3s"
    assert tb.format_duration(2400) == "40m00s"
    assert tb.format_duration(7500) == "2h05m"


def _m(train: float, val: float | None = None, forward: float = 0.01) -> tb.Measurement:
    return tb.Measurement(train_seconds=train, val_seconds=train / 3 if val is None else val, forward_seconds=forward)


@pytest.mark.parametrize(("budget", "train_s"), [(2400, 0.4), (2400, 5.0), (600, 23.5), (8 * 3600, 0.05),
                                                 (86400 * 10, 0.3), (120, 1.0)])
def test_schedule_fits_the_budget(budget: float, train_s: float) -> None:
    s = tb.derive_schedule(budget, _m(train_s), reserve_seconds=budget * 0.1)
    assert s.epochs >= 1 and 1 <= s.iterations_per_epoch <= 250 and 1 <= s.val_iterations <= 50
    assert s.epochs * s.epoch_seconds <= budget * 0.9 + 1e-6
    # and it uses most of it: one more epoch would not fit
    assert (s.epochs + 1) * s.epoch_seconds >= budget * (1 - tb.SAFETY) - budget * 0.1 - 1e-6
    assert s.overrides() == {"epochs": s.epochs, "iterations_per_epoch": s.iterations_per_epoch,
                             "val_iterations": s.val_iterations}
    assert "time budget" in s.explain() and f"{s.epochs} epochs" in s.explain()


def test_schedule_shape() -> None:
    small = tb.derive_schedule(2400, _m(0.4))  # ~5000 iterations -> about 50 epochs of ~100
    assert 40 <= small.epochs <= 60 and small.val_iterations == round(small.iterations_per_epoch * 0.2)
    huge = tb.derive_schedule(30 * 86400, _m(0.1))  # more than the reference: 250 per epoch, 50 validation
    assert huge.iterations_per_epoch == 250 and huge.val_iterations == 50 and huge.epochs > 1000
    no_val = tb.derive_schedule(600, _m(1.0), with_validation=False)
    assert no_val.val_iterations == 0
    few = tb.derive_schedule(2400, _m(14.5))  # ~150 iterations: 10 per epoch rather than 50 epochs of 3
    assert few.iterations_per_epoch == 10 and 10 <= few.epochs <= 16
    tiny = tb.derive_schedule(40, _m(5.0))  # less than one 10-iteration epoch fits: shorter epochs
    assert tiny.epochs >= 1 and tiny.iterations_per_epoch < 10


def test_schedule_too_short_names_the_minimum() -> None:
    with pytest.raises(ConfigError, match=r"too short.*23\.50 s.*at least"):
        tb.derive_schedule(180, _m(23.5), reserve_seconds=1200)


def test_windows_and_validation_estimate() -> None:
    assert tb.windows_per_case((36, 50, 35), (40, 56, 40)) == 1
    assert tb.windows_per_case((100, 56), (40, 56)) == 4  # ceil(60 / 20) + 1
    assert tb.windows_per_case((36, 50, 35), (56, 40)) == 36  # a 2D patch: one tile per slice
    est = tb.validation_seconds([(36, 50, 35)] * 2, (40, 56, 40), forward_seconds=0.5, mirror_axes=3,
                                per_case_overhead=1.0)
    assert est == pytest.approx(2 * 8 * 0.5 + 2.0)


def test_guard_keeps_the_plan_when_on_time() -> None:
    clock = FakeClock()
    s = tb.derive_schedule(1000, _m(1.0, 0.2))
    guard = tb.BudgetGuard(s, clock=clock)
    epochs = s.epochs
    for epoch in range(s.epochs):
        epochs = guard.adjust(epoch, epochs)
        clock.advance(s.epoch_seconds)
    assert epochs == s.epochs


@pytest.mark.parametrize("slowdown", [2.0, 3.5])
def test_guard_shortens_when_the_machine_slows_down(slowdown: float) -> None:
    clock = FakeClock()
    s = tb.derive_schedule(1000, _m(1.0, 0.2))
    guard = tb.BudgetGuard(s, clock=clock)
    start, epochs, epoch = clock(), s.epochs, 0
    while epoch < epochs:
        epochs = guard.adjust(epoch, epochs)
        clock.advance(s.epoch_seconds * slowdown)
        epoch += 1
    assert epochs < s.epochs
    assert clock() - start <= s.available_seconds + s.epoch_seconds * slowdown


def test_guard_extends_a_one_epoch_plan_in_fit(tmp_path: Path, fake_run, monkeypatch) -> None:
    """A plan of 1 epoch whose epoch ran in half the measured time gets a second one (the loop asks after the
    last planned epoch too); the lr of the added epoch follows the new horizon."""
    run = fake_run(tmp_path / "fold_0", epochs=1000)
    clock = FakeClock()
    monkeypatch.setattr(tb, "measure", lambda run, **kw: _m(10.0, 5.0, 0.01))
    schedule = tb.apply(run, 30, patch_size=(8, 8, 8), final_validation=False, clock=clock)
    assert schedule.epochs == 1
    run.config = run.config.replace(iterations_per_epoch=2, val_iterations=1)
    original = run.augment

    def fast(data, seg, generator):
        clock.advance(schedule.epoch_seconds * 0.4 / run.config.recipe.iterations_per_epoch)
        return original(data, seg, generator)

    run.augment = fast
    fit(run)
    final = ckpt.load_checkpoint(tmp_path / "fold_0" / ckpt.FINAL)
    assert final.current_epoch == 2 and final.training_config.recipe.epochs == 2
    assert final.logging.values["lrs"] == pytest.approx([0.01, 0.01 * 0.5 ** 0.9])


def test_very_short_budget_uses_shorter_epochs() -> None:
    s = tb.derive_schedule(1200, _m(48.0, 7.7), reserve_seconds=284)  # the loaded 3D run: ~17 iterations
    assert s.epochs >= tb.MIN_EPOCHS and s.iterations_per_epoch < 10
    assert s.epochs * s.epoch_seconds <= s.available_seconds


def test_guard_lengthens_a_little_when_faster() -> None:
    clock = FakeClock()
    s = tb.derive_schedule(1000, _m(1.0, 0.2))
    guard = tb.BudgetGuard(s, clock=clock)
    epochs, epoch = s.epochs, 0
    while epoch < epochs:
        epochs = guard.adjust(epoch, epochs)
        clock.advance(s.epoch_seconds * 0.5)
        epoch += 1
    assert s.epochs < epochs <= int(s.epochs * 1.5) + 1


def test_split_budget_and_description() -> None:
    jobs = [("2d", 0), ("2d", 1), ("3d_fullres", 0), ("3d_fullres", 1)]
    shares = tb.split_budget(3600, jobs, weights={"3d_fullres": 2.0})
    assert sum(shares.values()) == pytest.approx(3600)
    assert shares[("3d_fullres", 0)] == pytest.approx(2 * shares[("2d", 0)])
    assert tb.split_budget(3600, jobs, parallel=2)[("2d", 0)] == pytest.approx(1800)
    text = tb.describe_split(shares, 3600)
    assert "4 training(s)" in text and "2d: 2 fold(s) x 10m00s" in text and "3d_fullres: 2 fold(s) x 20m00s" in text
    assert tb.split_budget(10, []) == {}


def test_cpu_recipe() -> None:
    assert tb.cpu_recipe(2)["batch_size"] == 8 and tb.cpu_recipe(3)["batch_size"] == 2
    assert tb.recipe_for("cpu", 3) == tb.cpu_recipe(3)
    with pytest.raises(ConfigError):
        tb.cpu_recipe(4)


def test_measure_restores_the_run(tmp_path: Path, fake_run) -> None:
    run = fake_run(tmp_path / "fold_0", epochs=2)
    before = {k: v.clone() for k, v in run.module.state_dict().items()}
    opt_before = json.dumps(str(run.optimizer.state_dict()["state"]))
    rng = torch.get_rng_state()
    m = tb.measure(run, train_iterations=2, val_iterations=1)
    assert m.train_seconds > 0 and m.val_seconds > 0 and m.forward_seconds == pytest.approx(m.val_seconds / 2)
    assert all(torch.equal(before[k], v) for k, v in run.module.state_dict().items())
    assert json.dumps(str(run.optimizer.state_dict()["state"])) == opt_before
    assert torch.equal(torch.get_rng_state(), rng)


def test_apply_sets_schedule_and_fit_follows_the_guard(tmp_path: Path, fake_run, monkeypatch) -> None:
    run = fake_run(tmp_path / "fold_0", epochs=1000)
    clock = FakeClock()
    monkeypatch.setattr(tb, "measure", lambda run, **kw: _m(1.0, 0.5, 0.01))
    schedule = tb.apply(run, 100, patch_size=(8, 8, 8), final_validation=True, clock=clock)
    assert 5 <= schedule.epochs <= 8 and schedule.iterations_per_epoch == 10
    assert run.config.recipe.epochs == schedule.epochs and run.config.recipe.iterations_per_epoch == schedule.iterations_per_epoch
    assert schedule.reserve_seconds > 0  # the fold's validation cases are kept time for
    assert run.lr_at(0) == pytest.approx(run.config.recipe.initial_lr)
    planned = schedule.epochs
    # each epoch "takes" three times the plan: the guard cuts the run short and the lr still decays to ~0
    original = run.augment

    run.config = run.config.replace(iterations_per_epoch=2, val_iterations=1)  # fast, the clock is faked

    def slow(data, seg, generator):
        clock.advance(schedule.epoch_seconds * 3 / run.config.recipe.iterations_per_epoch)
        return original(data, seg, generator)

    run.augment = slow
    fit(run)
    final = ckpt.load_checkpoint(tmp_path / "fold_0" / ckpt.FINAL)
    assert final.current_epoch == run.config.recipe.epochs < planned
    lrs = final.logging.values["lrs"]
    assert lrs[-1] < lrs[0] * (2 / planned + 0.5)


def test_apply_rejects_a_budget_too_small(tmp_path: Path, fake_run, monkeypatch) -> None:
    run = fake_run(tmp_path / "fold_0", epochs=5)
    monkeypatch.setattr(tb, "measure", lambda run, **kw: _m(30.0))
    with pytest.raises(ConfigError, match="too short"):
        tb.apply(run, 40, patch_size=(8, 8, 8), clock=FakeClock())
    assert run.config.recipe.epochs == 5


def test_resolve_config() -> None:
    cfg, seconds = tb.resolve_config("reference", "40m", 3, {"device": "cpu"})
    assert seconds == 2400 and cfg.recipe.batch_size == 2 and not cfg.runtime.channels_last
    assert cfg.recipe.epochs == 1000
    cfg, seconds = tb.resolve_config("short", None, 2, {"device": "cpu"})
    assert seconds == tb.SHORT_BUDGET_SECONDS and cfg.recipe.batch_size == 8
    cfg, seconds = tb.resolve_config("short", None, 2, {"epochs": 2, "iterations_per_epoch": 3})
    assert seconds is None and (cfg.recipe.epochs, cfg.recipe.iterations_per_epoch) == (2, 3)  # fixed: no budget
    cfg, seconds = tb.resolve_config("reference", None, 2, {})
    assert seconds is None and cfg.recipe.epochs == 1000 and cfg.recipe.batch_size is None
    with pytest.raises(ConfigError, match="do not also set epochs"):
        tb.resolve_config("reference", "40m", 2, {"epochs": 3})
    assert tb.resolve_config("reference", 90.0, 2, {"device": "cpu", "batch_size": 4})[0].recipe.batch_size == 4


def test_cli_flags_parse() -> None:
    from autounet.cli import build_parser

    args = build_parser().parse_args(["train", "4", "2d", "0", "--time-budget", "40m"])
    assert args.time_budget == "40m"
    args = build_parser().parse_args(["run", "4", "--time-budget", "8h"])
    assert args.time_budget == "8h"


def test_bad_duration_is_a_clean_cli_error(tmp_path: Path, capsys) -> None:
    from autounet.cli import main

    code = main(["run", "4", "--workspace", str(tmp_path), "--time-budget", "forty"])
    assert code == 2 and "Invalid duration 'forty'" in capsys.readouterr().err
