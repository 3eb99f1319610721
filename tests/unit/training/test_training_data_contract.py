"""The training data path refuses what the loss must never see, naming the case (issue 13, items 3 and 5)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from autounet.errors import DatasetError
from autounet.training.data import BatchLoader


def _loader(store: Any, **kw: Any) -> BatchLoader:
    args: dict[str, Any] = {"batch_size": 2, "patch_size": (8, 8, 8), "final_patch_size": (8, 8, 8),
                            "oversample": 0.0, "seed": 1, "workers": 0, "label_values": (0, 1, 2)}
    args.update(kw)
    return BatchLoader(store, store.case_ids(), **args)


def _read_all(loader: BatchLoader) -> None:
    for it in range(6):
        loader.read(0, it)


def test_recorded_undeclared_label_is_refused_before_training(make_store) -> None:
    store = make_store(n_cases=3, shape=(10, 10, 10))
    for case in store.case_ids():
        store.props[case]["label_values"] = [0, 1, 2]
    store.props["case_01"]["label_values"] = [0, 1, 2, 3]
    with pytest.raises(DatasetError, match=r"case 'case_01'.*label values \[3\]"):
        _loader(store)


def test_undeclared_label_in_a_patch_is_refused(make_store) -> None:
    store = make_store(n_cases=1, shape=(8, 8, 8))
    store.cases["case_00"][1][...] = 4  # a store without a label record: the patch check catches it
    loader = _loader(store)
    with pytest.raises(DatasetError, match=r"case 'case_00'.*label values \[4\]"):
        _read_all(loader)
    _read_all(_loader(store, label_values=None))  # no labels given: no check


def test_non_finite_patch_is_refused(make_store) -> None:
    store = make_store(n_cases=1, shape=(8, 8, 8))
    store.cases["case_00"][0][...] = np.nan
    with pytest.raises(DatasetError, match=r"case 'case_00'.*NaN"):
        _read_all(_loader(store))


class _Broken:
    def __getitem__(self, key: Any) -> Any:
        raise RuntimeError("blosc2 decompression error")

    shape = (1, 8, 8, 8)


def test_undecodable_case_names_the_case_and_the_repair(make_store) -> None:
    store = make_store(n_cases=1, shape=(8, 8, 8))
    _, seg = store.cases["case_00"]
    store.cases["case_00"] = (_Broken(), seg)
    store.repair_hint = lambda case: f"run `autounet preprocess D -c 3d_fullres` to redo {case}"
    with pytest.raises(DatasetError, match=r"case 'case_00' \(RuntimeError: blosc2.*autounet preprocess D"):
        _read_all(_loader(store))
