"""Cross-validation splits (``splits_final.json``) with the reference's rule (§5.2), without scikit-learn.

Five folds over the sorted case identifiers, as scikit-learn's ``KFold(5, shuffle=True, random_state=12345)``:
shuffle ``arange(n)`` with ``RandomState(12345)``, cut it into 5 consecutive chunks (the first ``n % 5`` one element
longer); fold ``i`` validates on chunk ``i``. Both lists are in sorted identifier order. An existing
``splits_final.json`` (for example one a user wrote) is always respected; a requested fold beyond its folds gets
the reference's random 80:20 split with seed ``12345 + fold``. Fold ``all`` trains and validates on every case.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from autounet._atomic import write_json_atomic
from autounet._log import get_logger
from autounet.dataset import small
from autounet.errors import DatasetError, UsageError

log = get_logger(__name__)
Split = dict[str, list[str]]
SEED = 12345
N_FOLDS = 5


def make_splits(case_ids: Sequence[str], *, n_folds: int = N_FOLDS, seed: int = SEED) -> list[Split]:
    """The reference's k-fold split of ``case_ids`` (sorted first)."""
    ids = sorted(case_ids)
    n = len(ids)
    if n < n_folds:
        raise DatasetError(f"Cannot make {n_folds} cross-validation folds from {n} case(s); need at least {n_folds}.")
    order = np.arange(n)
    np.random.RandomState(seed).shuffle(order)
    sizes = np.full(n_folds, n // n_folds)
    sizes[: n % n_folds] += 1
    splits, start = [], 0
    for size in sizes:
        val_idx = set(order[start:start + size].tolist())
        start += size
        splits.append({"train": [ids[i] for i in range(n) if i not in val_idx],
                       "val": [ids[i] for i in range(n) if i in val_idx]})
    return splits


def random_split(case_ids: Sequence[str], fold: int) -> Split:
    """The reference's fallback for a fold beyond the stored folds: 80 % train, seed ``12345 + fold``.

    Training cases are in the order drawn (as the reference), validation cases in sorted order.
    """
    ids = sorted(case_ids)
    n = len(ids)
    train_idx = np.random.RandomState(SEED + fold).choice(n, int(n * 0.8), replace=False)
    chosen = set(train_idx.tolist())
    return {"train": [ids[i] for i in train_idx.tolist()],
            "val": [ids[i] for i in range(n) if i not in chosen]}


def load_splits(path: str | os.PathLike[str]) -> list[Split]:
    """Read and validate a ``splits_final.json`` (a list of ``{"train": [...], "val": [...]}``)."""
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise DatasetError(f"Cannot read splits file {path}: {exc}") from exc
    if not isinstance(data, list) or not all(isinstance(d, dict) and {"train", "val"} <= set(d) for d in data):
        raise DatasetError(f"Splits file {path} must be a JSON list of {{'train': [...], 'val': [...]}} objects.")
    return [{"train": [str(c) for c in d["train"]], "val": [str(c) for c in d["val"]]} for d in data]


def save_splits(path: str | os.PathLike[str], splits: list[Split]) -> None:
    """Write ``splits_final.json`` atomically."""
    write_json_atomic(path, splits)


def fold_cases(splits_file: str | os.PathLike[str], case_ids: Sequence[str],
               fold: int | str) -> tuple[list[str], list[str]]:
    """Train and validation cases of ``fold`` (0.. or ``"all"``), creating ``splits_final.json`` when absent."""
    ids = sorted(case_ids)
    if str(fold) == "all":
        return ids, ids
    try:
        k = int(fold)
    except ValueError:
        raise UsageError(f"Fold must be an integer or 'all', got {fold!r}.") from None
    if k < 0:
        raise UsageError(f"Fold must be >= 0 or 'all', got {k}.")
    path = Path(splits_file)
    if path.is_file():
        splits = load_splits(path)
    else:
        if small.is_small(len(ids)):
            raise DatasetError(f"Cannot make {N_FOLDS} cross-validation folds for fold {k}: "
                               + small.advice(len(ids), splits_file=str(path), dataset=path.parent.name))
        splits = make_splits(ids)
        save_splits(path, splits)
        log.info("Created %d-fold cross-validation splits in %s.", len(splits), path)
    if k < len(splits):
        split = splits[k]
    else:
        log.info("Fold %d is not in %s (%d folds): using a random 80:20 split (seed %d).", k, path, len(splits),
                 SEED + k)
        split = random_split(ids, k)
    known = set(ids)
    missing = sorted(set(split["train"] + split["val"]) - known)
    if missing:
        raise DatasetError(f"Splits file {path}, fold {k}: case(s) {', '.join(missing[:5])} are not preprocessed.")
    if set(split["train"]) & set(split["val"]):
        log.warning("Splits file %s, fold %d: training and validation cases overlap.", path, k)
    return list(split["train"]), list(split["val"])
