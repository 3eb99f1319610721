"""Progress lines without a terminal: the Ticker (fake clock), training within an epoch, prediction per case."""

from __future__ import annotations

import logging
from pathlib import Path

from autounet._progress import Ticker, format_eta


class FakeClock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_format_eta() -> None:
    assert [format_eta(s) for s in (4.4, 200, 7500, -3)] == ["4s", "3m20s", "2h05m", "0s"]


def test_ticker_logs_at_most_every_interval(caplog) -> None:
    clock = FakeClock()
    logger = logging.getLogger("autounet.test_progress")
    ticker = Ticker(100, what="epoch 0/5", logger=logger, interval=30.0, clock=clock)
    logged = []
    with caplog.at_level(logging.INFO, logger="autounet.test_progress"):
        for _ in range(100):
            clock.t += 2.0  # 2 s per iteration: a line every 15 iterations (30 s)
            logged.append(ticker.update(detail=lambda: "loss 0.5000", extra_items=400))
    assert sum(logged) == 6 and logged[14] and not any(logged[:14])
    first = caplog.records[0].getMessage()
    assert first == "epoch 0/5: 15/100 iterations (loss 0.5000), 2.00 s/iteration, ETA 16m10s"  # 485 left x 2 s


def test_ticker_every_item_and_lazy_detail(caplog) -> None:
    clock = FakeClock()
    calls = []
    ticker = Ticker(3, what="predict", logger=logging.getLogger("autounet.t2"), unit="case", every=True, clock=clock)
    slow = Ticker(3, what="x", logger=logging.getLogger("autounet.t2"), interval=99, clock=clock)
    with caplog.at_level(logging.INFO, logger="autounet.t2"):
        for case in ("a", "b", "c"):
            clock.t += 10
            ticker.update(detail=case)
            slow.update(detail=lambda: calls.append(1) or "never")
    messages = [r.getMessage() for r in caplog.records]
    assert messages[-1] == "predict: 3/3 cases (c), 10.00 s/case, ETA 0s"
    assert len(messages) == 3 and not calls  # the interval ticker never evaluated its detail


def test_training_logs_within_the_epoch(tmp_path: Path, fake_run, caplog, monkeypatch) -> None:
    from autounet.training import loop

    monkeypatch.setattr(loop, "PROGRESS_INTERVAL", 0.0)
    monkeypatch.setattr(logging.getLogger("autounet"), "propagate", True)  # a CLI test may have turned it off
    run = fake_run(tmp_path / "fold_0", epochs=2)
    with caplog.at_level(logging.INFO, logger="autounet.training.loop"):
        loop.fit(run)
    lines = [r.getMessage() for r in caplog.records
             if r.getMessage().startswith("epoch ") and " iterations (loss " in r.getMessage()]
    assert len(lines) == 2 * run.config.recipe.iterations_per_epoch
    assert lines[0].startswith("epoch 0/2: 1/4 iterations (loss ") and "s/iteration, ETA " in lines[0]


def test_no_lines_with_a_bar(tmp_path: Path, fake_run, caplog, monkeypatch) -> None:
    from autounet.training import loop

    monkeypatch.setattr(loop, "PROGRESS_INTERVAL", 0.0)
    run = fake_run(tmp_path / "fold_0", epochs=1)
    run.progress = True
    with caplog.at_level(logging.INFO, logger="autounet.training.loop"):
        loop.fit(run)
    assert not [r for r in caplog.records if "s/iteration" in r.getMessage()]
