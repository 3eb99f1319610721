"""Training log: per-epoch values, the EMA pseudo-Dice, a text log, a JSON-lines log and ``progress.png``.

:class:`TrainingLog` holds one entry per epoch for each key (the reference's log dict keys plus data-wait share)
and is saved whole inside every checkpoint, so a resumed run continues its curves. The JSON-lines file is rewritten
from the log (atomically) after every epoch, which keeps it free of duplicates after an interruption.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autounet._atomic import atomic_path
from autounet._log import get_logger
from autounet.schemas.training_log import EpochRecord, write_training_log
from autounet.workspace import PROGRESS_PNG, TRAINING_LOG_JSONL, TRAINING_LOG_TXT_PREFIX

log = get_logger(__name__)
JSONL_NAME = TRAINING_LOG_JSONL
KEYS = ("mean_fg_dice", "ema_fg_dice", "dice_per_class_or_region", "train_losses", "val_losses", "lrs",
        "epoch_start_timestamps", "epoch_end_timestamps", "data_wait_share")


@dataclass
class TrainingLog:
    """Per-epoch values; ``ema_decay`` is the weight of the old EMA value (0.9 in the reference)."""

    ema_decay: float = 0.9
    values: dict[str, list[Any]] = field(default_factory=lambda: {k: [] for k in KEYS})

    @property
    def epochs_logged(self) -> int:
        """Number of completed epochs in the log."""
        return len(self.values["epoch_end_timestamps"])

    def log_epoch(self, *, train_loss: float, val_loss: float, dice_per_class: list[float], lr: float,
                  start: float, end: float, data_wait_share: float) -> float:
        """Append one epoch; returns the new EMA pseudo-Dice (first epoch: the raw value)."""
        mean = _nanmean(dice_per_class)
        ema_list = self.values["ema_fg_dice"]
        ema = mean if not ema_list else self.ema_decay * ema_list[-1] + (1 - self.ema_decay) * mean
        for key, value in (("mean_fg_dice", mean), ("ema_fg_dice", ema), ("dice_per_class_or_region", dice_per_class),
                           ("train_losses", train_loss), ("val_losses", val_loss), ("lrs", lr),
                           ("epoch_start_timestamps", start), ("epoch_end_timestamps", end),
                           ("data_wait_share", data_wait_share)):
            self.values[key].append(value)
        return ema

    def epoch_record(self, epoch: int) -> dict[str, Any]:
        """All values of one epoch as a flat dict (one JSON line)."""
        rec: dict[str, Any] = {"epoch": epoch}
        rec.update({k: self.values[k][epoch] for k in KEYS})
        rec["epoch_time"] = rec["epoch_end_timestamps"] - rec["epoch_start_timestamps"]
        return rec

    def state_dict(self) -> dict[str, Any]:
        """Plain-Python state for checkpoints."""
        return {"ema_decay": self.ema_decay, "values": {k: list(v) for k, v in self.values.items()}}

    @classmethod
    def from_state_dict(cls, state: dict[str, Any]) -> TrainingLog:
        """Restore a log saved with :meth:`state_dict` (keys missing from older checkpoints start empty)."""
        values = {k: list(state.get("values", state).get(k, [])) for k in KEYS}
        return cls(ema_decay=float(state.get("ema_decay", 0.9)), values=values)


def _nanmean(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return sum(finite) / len(finite) if finite else float("nan")


def epoch_line(rec: dict[str, Any], *, total_epochs: int, best: bool) -> str:
    """The per-epoch log line: losses, pseudo-Dice per class, EMA, lr, epoch time and data-wait share."""
    dice = ", ".join(f"{d:.4f}" for d in rec["dice_per_class_or_region"])
    line = (f"epoch {rec['epoch']}/{total_epochs - 1}: train_loss {rec['train_losses']:.4f}, "
            f"val_loss {rec['val_losses']:.4f}, pseudo-Dice [{dice}], EMA {rec['ema_fg_dice']:.4f}, "
            f"lr {rec['lrs']:.3g}, {rec['epoch_time']:.1f} s (data wait {100 * rec['data_wait_share']:.1f} %)")
    return line + (" *new best EMA pseudo-Dice*" if best else "")


class RunLogger:
    """Writes the text log, the JSON-lines log and ``progress.png`` of one fold folder (rank 0 only)."""

    def __init__(self, fold_dir: Path, *, enabled: bool = True, plot: bool = True) -> None:
        self.fold_dir = fold_dir
        self.enabled, self.plot = enabled, plot
        stamp = _dt.datetime.now()
        name = (f"{TRAINING_LOG_TXT_PREFIX}{stamp.year}_{stamp.month}_{stamp.day}_"
                f"{stamp.hour:02d}_{stamp.minute:02d}_{stamp.second:02d}.txt")
        self.text_path = fold_dir / name

    def text(self, message: str) -> None:
        """Log ``message`` and append it, timestamped, to the text log (nothing on ranks other than 0)."""
        if not self.enabled:
            return
        log.info(message)
        self.fold_dir.mkdir(parents=True, exist_ok=True)
        with open(self.text_path, "a", encoding="utf-8") as fh:
            fh.write(f"{_dt.datetime.now().isoformat(sep=' ', timespec='seconds')}: {message}\n")

    def epoch(self, training_log: TrainingLog, epoch: int, *, total_epochs: int, best: bool) -> None:
        """Log the line of ``epoch``, rewrite the JSON lines, redraw ``progress.png``."""
        self.text(epoch_line(training_log.epoch_record(epoch), total_epochs=total_epochs, best=best))
        if not self.enabled:
            return
        write_training_log(self.fold_dir / JSONL_NAME, (EpochRecord.from_dict(training_log.epoch_record(e))
                                                        for e in range(training_log.epochs_logged)))
        if self.plot:
            plot_progress(training_log, self.fold_dir / PROGRESS_PNG)


def plot_progress(training_log: TrainingLog, path: str | os.PathLike[str]) -> None:
    """Draw losses with pseudo-Dice and its EMA, epoch time and learning rate (3 rows) to ``path``."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    v = training_log.values
    epochs = list(range(training_log.epochs_logged))
    fig = Figure(figsize=(12, 16))
    ax_loss, ax_time, ax_lr = fig.subplots(3, 1)
    ax_loss.plot(epochs, v["train_losses"], color="b", label="train loss")
    ax_loss.plot(epochs, v["val_losses"], color="r", label="val loss")
    ax_dice = ax_loss.twinx()
    ax_dice.plot(epochs, v["mean_fg_dice"], color="g", linestyle=":", label="pseudo Dice")
    ax_dice.plot(epochs, v["ema_fg_dice"], color="g", label="pseudo Dice (EMA)")
    ax_loss.set_xlabel("epoch")
    ax_loss.set_ylabel("loss")
    ax_dice.set_ylabel("pseudo Dice")
    ax_loss.legend(loc="upper left")
    ax_dice.legend(loc="lower right")
    times = [e - s for s, e in zip(v["epoch_start_timestamps"], v["epoch_end_timestamps"])]
    ax_time.plot(epochs, times, color="b", label="epoch duration")
    ax_time.set_xlabel("epoch")
    ax_time.set_ylabel("time [s]")
    ax_time.legend(loc="upper left")
    ax_lr.plot(epochs, v["lrs"], color="b", label="learning rate")
    ax_lr.set_xlabel("epoch")
    ax_lr.set_ylabel("learning rate")
    ax_lr.legend(loc="upper right")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=72)
