"""The public Python API (``autounet.api``): every function called once on a tiny synthetic dataset, in pipeline
order, sharing one workspace (each step uses what the previous ones wrote)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from autounet import api
from autounet.errors import UsageError
from autounet.planning.store import export_reference_file
from autounet.testing import make_synthetic_dataset
from autounet.workspace import DEFAULT_PLANS_NAME, Workspace

ID, NAME = 997, "Dataset997_Api"
TINY = {"epochs": 1, "iterations_per_epoch": 2, "val_iterations": 1}


@pytest.fixture(scope="module")
def ws(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    root = tmp_path_factory.mktemp("api")
    make_synthetic_dataset(root / "source", n_cases=6, shape=(6, 24, 24), seed=3)
    return Workspace.at(root / "ws").ensure()


@pytest.fixture(scope="module")
def source(ws: Workspace) -> Path:
    return ws.raw.parent.parent / "source"


def test_import_and_verify(ws: Workspace, source: Path) -> None:
    result = api.import_dataset(source / "imagesTr", source / "labelsTr", dataset_id=ID, name="Api",
                                channels=["MRI"], label_values={"background": 0, "ellipsoid": 1, "tube": 2},
                                workspace=ws)
    assert (ws.raw / NAME / "dataset.json").is_file() and len(result.cases) == 6
    report = api.verify(ID, workspace=ws, workers=1)
    assert report.ok and report.n_cases == 6, report.problems


def test_fingerprint_and_plan(ws: Workspace) -> None:
    fingerprint = api.fingerprint(ID, workers=1, workspace=ws)
    assert fingerprint.num_cases == 6 and fingerprint.num_channels == 1
    plans = api.plan(ID, configurations=["2d"], workers=1, workspace=ws)
    assert plans.plans_name == DEFAULT_PLANS_NAME and plans.configuration("2d").ndim == 2


def test_preprocess_reads_a_reference_plans_file(ws: Workspace) -> None:
    plans_file = ws.plans_file(NAME, DEFAULT_PLANS_NAME)
    export_reference_file(api.plan(ID, configurations=["2d"], workers=1, workspace=ws), plans_file)
    summaries = api.preprocess(ID, ["2d"], workers=1, workspace=ws)
    assert [s.configuration for s in summaries] == ["2d"] and len(summaries[0].processed) == 6


def test_train_validates_and_predict_evaluate(ws: Workspace, source: Path, tmp_path: Path) -> None:
    result = api.train(ID, "2d", 0, budget="short", workspace=ws, device="cpu", **TINY)
    fold_dir = result.fold_dir
    assert (fold_dir / "checkpoint_final.pth").is_file() and result.validation_dice is not None
    assert (fold_dir / "validation" / "summary.json").is_file()
    inputs = tmp_path / "in"
    inputs.mkdir()
    for image in sorted((source / "imagesTr").iterdir())[:2]:
        shutil.copy(image, inputs / image.name)
    report = api.predict(inputs, tmp_path / "out", dataset=ID, configuration="2d", folds=[0], device="cpu",
                         workspace=ws)
    assert report.ok and len(report.written) == 2
    written = sorted(p.name for p in (tmp_path / "out").glob("*.nii.gz"))
    assert len(written) == 2
    summary = api.evaluate(tmp_path / "out", source / "labelsTr", dataset=ID, workspace=ws)
    assert [c.case for c in summary.metric_per_case] == [n.removesuffix(".nii.gz") for n in written]
    assert 0.0 <= summary.score <= 1.0
    with pytest.raises(UsageError, match="model_dir, or dataset and configuration"):
        api.predict(inputs, tmp_path / "none", workspace=ws)


def test_find_best_and_run_resume(ws: Workspace) -> None:
    info = api.find_best(ID, configurations=["2d"], folds=[0], workspace=ws)
    assert info.best.endswith("__2d") and info.folds == (0,)
    summary = api.run(ID, configurations=["2d"], folds=[0], budget="short", devices=["cpu"], workers=1,
                      workspace=ws, **TINY)
    assert summary.configurations == ["2d"]
