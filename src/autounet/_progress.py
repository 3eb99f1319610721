"""Progress as log lines, for when stderr is not a terminal (a log file, a batch job): no bars, but a steady pulse.

:class:`Ticker` counts work items and emits an INFO record through the package logger at most every ``interval``
seconds (training iterations), or after every item (``every=True``: predicted cases), with the rate and the ETA.
The CLI decides whether records are shown (``--quiet`` hides them); on a terminal the tqdm bars are used instead.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable


def format_eta(seconds: float) -> str:
    """``45s``, ``3m20s``, ``2h05m``."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, sec = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{sec:02d}s"


class Ticker:
    """Progress of ``total`` items as log lines: ``<what>: 12/50 <unit>s, 2.10 s/<unit>, ETA 1m20s``.

    Args:
        total: items expected.
        what: the line's prefix (``epoch 3``, ``predict``).
        logger: where records go (INFO).
        unit: the item's name.
        interval: seconds between lines (the first after ``interval`` seconds); ignored with ``every``.
        every: one line per item.
        clock: time source (a fake in tests).
        start: items already done before this ticker (a resumed epoch).
    """

    def __init__(self, total: int, *, what: str, logger: logging.Logger, unit: str = "iteration",
                 interval: float = 30.0, every: bool = False, clock: Callable[[], float] = time.monotonic,
                 start: int = 0) -> None:
        self.total, self.what, self.logger, self.unit = int(total), what, logger, unit
        self.interval, self.every, self.clock = float(interval), every, clock
        self.start_count = self.done = int(start)
        self.t0 = self.last = clock()

    def seconds_per_item(self) -> float | None:
        """Mean seconds per item since the ticker started (``None`` before the first)."""
        n = self.done - self.start_count
        return (self.clock() - self.t0) / n if n > 0 else None

    def update(self, n: int = 1, *, detail: str | Callable[[], str] = "", extra_items: int = 0) -> bool:
        """Count ``n`` items; log a line when due. ``extra_items`` still follow after ``total`` (for the ETA).

        ``detail`` may be a callable, evaluated only when a line is due (e.g. reading a loss off the GPU).
        Returns whether a line was logged.
        """
        self.done += n
        now = self.clock()
        if not (self.every or now - self.last >= self.interval):
            return False
        self.last = now
        rate = self.seconds_per_item() or 0.0
        left = max(0, self.total - self.done) + max(0, extra_items)
        text = detail() if callable(detail) else detail
        detail = f" ({text})" if text else ""
        self.logger.info("%s: %d/%d %ss%s, %.2f s/%s, ETA %s", self.what, self.done, self.total, self.unit, detail,
                         rate, self.unit, format_eta(rate * left))
        return True


__all__ = ["Ticker", "format_eta"]
