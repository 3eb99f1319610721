"""The training log of a fold (``training_log.jsonl``): one typed record per epoch, one reader, one writer.

Training rewrites the whole file (atomically) after every epoch, so after an interruption it holds each epoch once.
Readers (the report, ``autounet train --json``) use :func:`read_training_log`; a line that is not a valid record is
skipped with a warning unless ``strict``, because a log may be read while another process is writing a new one.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated, Any

from pydantic import BeforeValidator
from pydantic.dataclasses import dataclass

from autounet._atomic import write_bytes_atomic
from autounet._log import get_logger
from autounet.errors import SchemaError
from autounet.schemas._base import RECORD_CONFIG, dump, json_schema, validate

_log = get_logger(__name__)
#: A value that may be NaN (written as ``NaN``; ``null`` reads as NaN too).
Num = Annotated[float, BeforeValidator(lambda v: math.nan if v is None else v)]


@dataclass(frozen=True, config=RECORD_CONFIG)
class EpochRecord:
    """One epoch of training (the reference's log keys, one value each, plus the data-wait share).

    Attributes:
        epoch: epoch index (0-based).
        mean_fg_dice: pseudo-Dice of the epoch, mean over foreground classes (NaN classes ignored).
        ema_fg_dice: exponential moving average of ``mean_fg_dice`` (the checkpoint-selection value).
        dice_per_class_or_region: pseudo-Dice per foreground label or region.
        train_losses: mean training loss of the epoch.
        val_losses: mean validation loss of the epoch.
        lrs: learning rate of the epoch.
        epoch_start_timestamps / epoch_end_timestamps: wall-clock times (seconds since the epoch).
        data_wait_share: share of the epoch spent waiting for batches.
        epoch_time: ``epoch_end_timestamps - epoch_start_timestamps``.
    """

    epoch: int
    mean_fg_dice: Num
    ema_fg_dice: Num
    dice_per_class_or_region: tuple[Num, ...]
    train_losses: Num
    val_losses: Num
    lrs: float
    epoch_start_timestamps: Num = math.nan  # the timing keys may be absent from logs of older versions
    epoch_end_timestamps: Num = math.nan
    data_wait_share: Num = math.nan
    epoch_time: Num = math.nan

    def to_dict(self) -> dict[str, Any]:
        """The JSON line's object."""
        return dump(self)

    @classmethod
    def from_dict(cls, data: Any, *, where: str = "training log record") -> EpochRecord:
        """Validate one line's object."""
        return validate(cls, data, where=where)


def write_training_log(path: str | os.PathLike[str], records: Iterable[EpochRecord]) -> None:
    """Write ``records`` as JSON lines, atomically (the whole file each time)."""
    lines = [json.dumps(r.to_dict(), allow_nan=True) for r in records]
    write_bytes_atomic(path, ("\n".join(lines) + "\n").encode("utf-8"))


def read_training_log(path: str | os.PathLike[str], *, strict: bool = False) -> list[EpochRecord]:
    """Read a ``training_log.jsonl``; a missing file is an empty log. Invalid lines raise ``SchemaError`` when
    ``strict``, else they are skipped with a warning."""
    path = Path(path)
    if not path.is_file():
        return []
    records = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        where = f"training log {path}, line {number}"
        try:
            records.append(EpochRecord.from_dict(json.loads(line), where=where))
        except (json.JSONDecodeError, SchemaError) as exc:
            if strict:
                raise SchemaError(f"{where}: not a valid epoch record ({exc}).") from exc
            _log.warning("Skipping line %d of %s: not a valid epoch record.", number, path)
    return records


def training_log_json_schema() -> dict[str, Any]:
    """JSON Schema of one line of ``training_log.jsonl``."""
    return json_schema(EpochRecord)
