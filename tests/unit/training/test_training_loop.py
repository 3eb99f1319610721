"""The loop on fakes: outputs, checkpoints, EMA, Ctrl-C save and bit-identical resume."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest
import torch

from autounet.training import checkpoint as ckpt
from autounet.training.loop import TrainingInterrupted, fit


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return ckpt.load_checkpoint(path).network_weights


def test_fit_writes_outputs(tmp_path: Path, fake_run) -> None:
    run = fake_run(tmp_path / "fold_0", epochs=3)
    fit(run)
    fold = tmp_path / "fold_0"
    assert (fold / ckpt.FINAL).is_file() and (fold / ckpt.BEST).is_file()
    assert not (fold / ckpt.LATEST).exists()
    assert (fold / "progress.png").stat().st_size > 1000
    lines = [json.loads(x) for x in (fold / "training_log.jsonl").read_text(encoding="utf-8").splitlines()]
    assert [r["epoch"] for r in lines] == [0, 1, 2]
    # EMA: first epoch raw, then 0.9 old + 0.1 new
    ema = [r["ema_fg_dice"] for r in lines]
    raw = [r["mean_fg_dice"] for r in lines]
    assert ema[0] == pytest.approx(raw[0]) and ema[1] == pytest.approx(0.9 * ema[0] + 0.1 * raw[1])
    assert [r["lrs"] for r in lines] == pytest.approx([0.01 * (1 - e / 3) ** 0.9 for e in range(3)])
    final = ckpt.load_checkpoint(fold / ckpt.FINAL)
    assert final.current_epoch == 3 and final.trainer_name == "fake"
    assert list(fold.glob("training_log_*.txt"))


def test_latest_interval(tmp_path: Path, fake_run) -> None:
    run = fake_run(tmp_path / "f", epochs=3, checkpoint_every=2)
    saved = []
    original = ckpt.save_checkpoint
    try:
        ckpt.save_checkpoint = lambda p, c: (saved.append((Path(p).name, c.current_epoch)), original(p, c))
        fit(run)
    finally:
        ckpt.save_checkpoint = original
    assert ("checkpoint_latest.pth", 2) in saved and ("checkpoint_latest.pth", 1) not in saved
    assert saved[-1] == ("checkpoint_final.pth", 3)


@pytest.mark.parametrize("interrupt_at", [5, 8])  # inside epoch 1, and at the end of epoch 1's training
def test_ctrl_c_saves_and_resume_is_bit_identical(tmp_path: Path, fake_run, interrupt_at: int) -> None:
    reference = fake_run(tmp_path / "a", epochs=3)
    fit(reference)

    calls = {"n": 0}

    def interrupting(data, seg, generator):
        calls["n"] += 1
        if calls["n"] == interrupt_at:
            os.kill(os.getpid(), signal.SIGINT)
        return data + 0.1 * torch.randn(data.shape, generator=generator), seg.clamp_min(0)

    run = fake_run(tmp_path / "b", epochs=3, augment=interrupting)
    with pytest.raises(TrainingInterrupted):
        fit(run)
    latest = ckpt.load_checkpoint(tmp_path / "b" / ckpt.LATEST)
    assert (latest.current_epoch, latest.iteration) == divmod(interrupt_at, 4) or latest.iteration == 0
    torch.manual_seed(12345)  # disturb global RNG: the resume must not depend on it
    resumed = fake_run(tmp_path / "b", epochs=3)
    fit(resumed, resume_from=latest)
    a, b = _weights(tmp_path / "a" / ckpt.FINAL), _weights(tmp_path / "b" / ckpt.FINAL)
    assert all(torch.equal(a[k], b[k]) for k in a)
    la = ckpt.load_checkpoint(tmp_path / "a" / ckpt.FINAL).logging.values
    lb = ckpt.load_checkpoint(tmp_path / "b" / ckpt.FINAL).logging.values
    assert la["train_losses"] == lb["train_losses"] and la["mean_fg_dice"] == lb["mean_fg_dice"]


def test_resume_from_final_trains_nothing(tmp_path: Path, fake_run) -> None:
    run = fake_run(tmp_path / "f", epochs=1)
    fit(run)
    final = ckpt.load_checkpoint(tmp_path / "f" / ckpt.FINAL)
    again = fake_run(tmp_path / "f", epochs=1)
    fit(again, resume_from=final)
    assert torch.equal(next(iter(_weights(tmp_path / "f" / ckpt.FINAL).values())),
                       next(iter(final.network_weights.values())))
