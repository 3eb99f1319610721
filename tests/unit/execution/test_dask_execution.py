"""Per-case stages on a local Dask cluster of 2 worker processes: outputs equal to the serial path, also when a
worker is killed mid-case; training jobs as GPU tasks with dependencies."""

from __future__ import annotations

import importlib
import os
import signal
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("distributed")
cloudpickle = pytest.importorskip("cloudpickle")

from autounet._atomic import try_claim
from autounet.evaluation import evaluate
from autounet.inference.testing import tiny_dataset, tiny_plans, write_random_model
from autounet.io import read_segmentation
from autounet.pipeline.cluster import run_jobs_on_dask
from autounet.pipeline.scheduler import Job
from autounet.preprocessing.store import CaseStore
from autounet.testing import make_synthetic_dataset
from autounet.workspace import Workspace

preprocess = importlib.import_module("autounet.preprocessing.run")
cloudpickle.register_pickle_by_value(sys.modules[__name__])  # workers cannot import this test module

DATASET = "Dataset900_Tiny"
N_CASES = 6


class KillOnce:
    """Task wrapper: the first attempt at ``case`` claims it (like the real task) and kills its worker process."""

    def __init__(self, fn, case: str, marker: Path, claim: Path | None = None) -> None:
        self.fn, self.case, self.marker, self.claim = fn, case, marker, claim

    def __call__(self, task):
        if task.case_id == self.case and not self.marker.exists():
            self.marker.write_text(str(os.getpid()), encoding="utf-8")
            if self.claim is not None:
                try_claim(self.claim)  # held by a process that dies: the retry must take it over
            os.kill(os.getpid(), signal.SIGKILL)
        return self.fn(task)


def _workspace(root: Path) -> Workspace:
    ws = Workspace.at(root).ensure()
    make_synthetic_dataset(ws.raw / DATASET, n_cases=N_CASES, shape=(8, 20, 20), spacing=(1.0, 1.0, 1.0))
    return ws


def _store_arrays(ws: Workspace, identifier: str) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    store = CaseStore(ws.preprocessed_data(DATASET, identifier))
    return {case: store.load(case) for case in store.case_ids()}


def _assert_same_store(a: Workspace, b: Workspace, identifier: str) -> None:
    left, right = _store_arrays(a, identifier), _store_arrays(b, identifier)
    assert sorted(left) == sorted(right) == [f"case_{i:03d}" for i in range(N_CASES)]
    for case in left:
        np.testing.assert_array_equal(left[case][0], right[case][0])
        np.testing.assert_array_equal(left[case][1], right[case][1])


@pytest.fixture
def serial_store(tmp_path) -> Workspace:
    ws = _workspace(tmp_path / "serial")
    preprocess.run(ws, DATASET, tiny_plans(), ["3d_fullres"], workers=1)
    return ws


def test_preprocess_on_dask_equals_serial(tmp_path, dask_client, serial_store) -> None:
    ws = _workspace(tmp_path / "dask")
    summary = preprocess.run(ws, DATASET, tiny_plans(), ["3d_fullres"], executor=dask_client)[0]
    assert sorted(summary.processed) == [f"case_{i:03d}" for i in range(N_CASES)]
    _assert_same_store(serial_store, ws, "tiny_3d")
    again = preprocess.run(ws, DATASET, tiny_plans(), ["3d_fullres"], executor=dask_client)[0]
    assert again.processed == [] and len(again.skipped) == N_CASES  # nothing finished is redone


def test_preprocess_worker_killed_mid_case(tmp_path, dask_client, serial_store, monkeypatch) -> None:
    ws = _workspace(tmp_path / "killed")
    folder = ws.preprocessed_data(DATASET, "tiny_3d")
    marker = tmp_path / "killed.marker"
    monkeypatch.setattr(preprocess, "preprocess_and_store",
                        KillOnce(preprocess.preprocess_and_store, "case_002", marker,
                                 claim=preprocess.claim_path(folder, "case_002")))
    summary = preprocess.run(ws, DATASET, tiny_plans(), ["3d_fullres"], executor=dask_client)[0]
    assert marker.exists(), "the worker was not killed"
    # a case finished on the killed worker has its task rerun (its result was lost) and is found done, not redone
    assert sorted(summary.processed + summary.skipped) == [f"case_{i:03d}" for i in range(N_CASES)]
    assert "case_002" in summary.processed
    _assert_same_store(serial_store, ws, "tiny_3d")
    assert not list(folder.glob(".*.claim")), "claims are released"
    dask_client.wait_for_workers(2, timeout=30)


def _model_and_images(tmp_path: Path) -> tuple[Path, Path]:
    model = write_random_model(tmp_path / "results", tiny_plans(), tiny_dataset(), "3d_fullres", folds=(0,))
    raw = make_synthetic_dataset(tmp_path / "raw", n_cases=N_CASES, shape=(12, 20, 20), spacing=(1.0, 1.0, 1.0))
    return model, raw / "imagesTr"


def _predict(executor, model: Path, images: Path, out: Path):
    from autounet.inference import Predictor
    from autounet.inference.distributed import ModelSpec, predict_folder_on

    predictor = Predictor.from_model_dir(model, folds=(0,), device="cpu")
    if executor is None:
        return predictor.predict_folder(images, out)
    spec = ModelSpec(str(model), folds=("0",), device="cpu")
    return predict_folder_on(executor, predictor, spec, images, out)


def _segmentations(folder: Path) -> dict[str, np.ndarray]:
    return {p.name: read_segmentation(p)[0] for p in sorted(folder.glob("*.nii.gz"))}


def test_predict_on_dask_equals_serial_and_resumes(tmp_path, dask_client) -> None:
    model, images = _model_and_images(tmp_path)
    serial = _predict(None, model, images, tmp_path / "serial")
    report = _predict(dask_client, model, images, tmp_path / "dask")
    assert report.ok and sorted(report.written) == sorted(serial.written)
    expected, got = _segmentations(tmp_path / "serial"), _segmentations(tmp_path / "dask")
    assert sorted(got) == sorted(expected) and len(got) == N_CASES
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name])
    (tmp_path / "dask" / "case_001.nii.gz").unlink()
    again = _predict(dask_client, model, images, tmp_path / "dask")
    assert again.written == ["case_001"] and len(again.skipped) == N_CASES - 1


def test_predict_worker_killed_mid_case(tmp_path, dask_client, monkeypatch) -> None:
    from autounet.inference import distributed as dist

    model, images = _model_and_images(tmp_path)
    _predict(None, model, images, tmp_path / "serial")
    marker = tmp_path / "killed.marker"
    monkeypatch.setattr(dist, "predict_case", KillOnce(dist.predict_case, "case_003", marker))
    report = _predict(dask_client, model, images, tmp_path / "dask")
    assert marker.exists() and report.ok and len(report.written) == N_CASES
    expected, got = _segmentations(tmp_path / "serial"), _segmentations(tmp_path / "dask")
    for name in expected:
        np.testing.assert_array_equal(got[name], expected[name])
    dask_client.wait_for_workers(2, timeout=30)


def test_evaluate_on_dask_equals_serial(tmp_path, dask_client) -> None:
    raw = make_synthetic_dataset(tmp_path / "a", n_cases=4, shape=(8, 20, 20), seed=1)
    other = make_synthetic_dataset(tmp_path / "b", n_cases=4, shape=(8, 20, 20), seed=2)
    serial = evaluate(other / "labelsTr", raw / "labelsTr", labels=[1, 2])
    on_dask = evaluate(other / "labelsTr", raw / "labelsTr", labels=[1, 2], executor=dask_client)
    assert on_dask == serial


def _write_order(log: Path, job: Job) -> None:
    if job.payload == "fail":
        raise RuntimeError(f"{job.key} failed")
    with log.open("a", encoding="utf-8") as f:
        f.write(job.key + "\n")


def test_training_jobs_are_gpu_tasks_with_dependencies(tmp_path, dask_client) -> None:
    from functools import partial

    log = tmp_path / "order.txt"
    jobs = [Job("3d_cascade_fullres/fold_0", depends_on=("3d_lowres/fold_0", "3d_lowres/fold_1")),
            Job("3d_lowres/fold_0"), Job("3d_lowres/fold_1"), Job("2d/fold_0", payload="fail"),
            Job("2d_next/fold_0", depends_on=("2d/fold_0",))]
    result = run_jobs_on_dask(dask_client, jobs, partial(_write_order, log))
    order = log.read_text(encoding="utf-8").split()
    assert sorted(result.finished) == sorted(order) == sorted(
        ["3d_cascade_fullres/fold_0", "3d_lowres/fold_0", "3d_lowres/fold_1"])
    assert order[-1] == "3d_cascade_fullres/fold_0"
    assert list(result.failed) == ["2d/fold_0"] and result.skipped == ["2d_next/fold_0"]
