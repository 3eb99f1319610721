"""Cross-validation splits against the reference's golden output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autounet.errors import DatasetError
from autounet.training.splits import fold_cases, load_splits, make_splits, random_split

GOLDEN = json.loads((Path(__file__).parents[2] / "data" / "golden" / "training" / "splits.json").read_text(encoding="utf-8"))


@pytest.mark.parametrize("n", sorted(GOLDEN, key=int))
def test_five_folds_match_reference(n: str) -> None:
    ids = [f"case_{i:03d}" for i in range(int(n))]
    assert make_splits(list(reversed(ids))) == GOLDEN[n]["folds"]


@pytest.mark.parametrize("n", ["13", "260"])
@pytest.mark.parametrize("fold", ["5", "7"])
def test_fallback_split_matches_reference(n: str, fold: str) -> None:
    ids = [f"case_{i:03d}" for i in range(int(n))]
    assert random_split(ids, int(fold)) == GOLDEN[n]["fallback"][fold]


def test_fold_cases_creates_and_respects_file(tmp_path: Path) -> None:
    ids = [f"c{i}" for i in range(10)]
    path = tmp_path / "splits_final.json"
    train, val = fold_cases(path, ids, 0)
    assert path.is_file() and sorted(train + val) == sorted(ids) and not set(train) & set(val)
    path.write_text(json.dumps([{"train": ["c1", "c2"], "val": ["c3"]}]))
    assert fold_cases(path, ids, 0) == (["c1", "c2"], ["c3"])
    assert load_splits(path)[0]["val"] == ["c3"]
    # fold beyond the user's folds: the 80:20 fallback
    train, val = fold_cases(path, ids, 3)
    assert len(train) == 8 and len(val) == 2
    assert fold_cases(path, ids, "all") == (sorted(ids), sorted(ids))


def test_bad_split_file_and_unknown_cases(tmp_path: Path) -> None:
    path = tmp_path / "splits_final.json"
    path.write_text("{}")
    with pytest.raises(DatasetError, match="splits_final.json"):
        fold_cases(path, ["a"], 0)
    path.write_text(json.dumps([{"train": ["zzz"], "val": ["a"]}]))
    with pytest.raises(DatasetError, match="zzz"):
        fold_cases(path, ["a", "b"], 0)
    with pytest.raises(DatasetError):
        make_splits(["a", "b"])
