"""The cascade hand-over: 3d_lowres validation predictions in the next stage's preprocessed geometry."""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from autounet.errors import DatasetError, PlansError
from autounet.inference import Predictor
from autounet.inference.testing import tiny_dataset, tiny_plans, write_random_model
from autounet.labels import LabelSpec
from autounet.pipeline.cascade import (
    next_stage_dir,
    next_stage_segmentation,
    pending_next_stage_cases,
    previous_stages,
    save_next_stage_segmentation,
    split_folds,
    with_previous_stages,
    write_next_stage_predictions,
)
from autounet.io import ImageGeometry
from autounet.preprocessing import CaseStore, preprocess_case, resample_data_or_seg_to_shape, write_case
from autounet.schemas.plans import ComponentSpec, Plans, save_plans
from autounet.training.data import PreviousStage
from autounet.workspace import Workspace

DATASET = "Dataset900_Tiny"
LINEAR = ComponentSpec.from_dict({"name": "default", "params": {"is_seg": False, "order": 1, "order_z": 0,
                                                                "force_separate_z": None}}, where="test")


def _plans(**kw: object) -> Plans:
    """The tiny plans with a separate preprocessed folder for 3d_lowres (the tiny plans share one)."""
    plans = tiny_plans(**kw)  # type: ignore[arg-type]
    configs = {k: dict(v) for k, v in plans.configurations.items()}
    configs["3d_lowres"]["data_identifier"] = "tiny_3d_lowres"
    return dataclasses.replace(plans, configurations=configs)


def _expected(logits: np.ndarray, target: tuple[int, ...], spacing: tuple[float, ...], labels: LabelSpec) -> np.ndarray:
    """The reference's recipe: order-1 resampling of the whole logits array (float64), then argmax / regions."""
    res = resample_data_or_seg_to_shape(logits.astype(np.float64), target, spacing, spacing, order=1, order_z=0)
    if not labels.has_regions:
        return res.argmax(0)
    probs = 1 / (1 + np.exp(-res))
    seg = np.zeros(target, dtype=np.int64)
    for channel, value in zip(probs, labels.regions_class_order or ()):
        seg[channel > 0.5] = value
    return seg


def _smooth_logits(rng: np.random.Generator, k: int, shape: tuple[int, ...]) -> np.ndarray:
    """Spatially smooth random logits (argmax regions several voxels wide, few near-ties)."""
    coarse = rng.normal(size=(k, *(max(2, s // 3) for s in shape)))
    return resample_data_or_seg_to_shape(coarse, shape, (1.0,) * 3, (1.0,) * 3, order=1).astype(np.float32) * 4


# ---- numerics -----------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("spacing", "shape", "target"), [
    ((2.0, 2.0, 2.0), (7, 9, 8), (14, 17, 16)),      # isotropic: linear on every axis
    ((8.0, 2.0, 2.0), (5, 9, 8), (10, 18, 15)),      # anisotropic (ratio 4 > 3): nearest along axis 0
    ((2.0, 2.0, 2.0), (7, 9, 8), (7, 9, 8)),         # same shape: no resampling
])
def test_next_stage_segmentation_matches_whole_array_resampling(rng: np.random.Generator, spacing, shape,
                                                                 target) -> None:
    labels = LabelSpec.from_dataset_spec(tiny_dataset())
    logits = _smooth_logits(rng, 3, shape)
    seg = next_stage_segmentation(torch.from_numpy(logits), target, spacing=spacing, labels=labels,
                                  resampling=LINEAR)
    expected = _expected(logits, target, spacing, labels)
    assert seg.shape == target and seg.dtype == np.uint8
    assert np.mean(seg == expected) > 0.999
    assert set(np.unique(seg)) <= {0, 1, 2} and len(np.unique(seg)) > 1


GOLDEN = Path(__file__).resolve().parents[2] / "data" / "golden" / "cascade" / "next_stage.npz"


def test_next_stage_segmentation_matches_the_reference() -> None:
    """Against nnunetv2 2.8.1's resample_and_save (see tests/data/golden/cascade/README.md)."""
    golden = np.load(GOLDEN)
    for name in golden["cases"]:
        regions = bool(golden[f"{name}_regions"])
        dataset = tiny_dataset(labels={"background": 0, "whole": [1, 2], "core": 2}, regions_class_order=[1, 2]) \
            if regions else tiny_dataset()
        seg = next_stage_segmentation(golden[f"{name}_logits"], tuple(golden[f"{name}_target"]),
                                      spacing=tuple(golden[f"{name}_spacing"]),
                                      labels=LabelSpec.from_dataset_spec(dataset), resampling=LINEAR)
        ref = golden[f"{name}_seg"]
        assert seg.shape == ref.shape and seg.dtype == ref.dtype, name
        assert np.array_equal(seg, ref), f"{name}: {(seg != ref).sum()} of {ref.size} voxels differ"


def test_next_stage_segmentation_separate_z_is_nearest_along_the_coarse_axis() -> None:
    labels = LabelSpec.from_dataset_spec(tiny_dataset())
    logits = np.zeros((3, 2, 4, 4), dtype=np.float32)
    logits[1, 0] = 5.0  # slice 0 → label 1
    logits[2, 1] = 5.0  # slice 1 → label 2
    seg = next_stage_segmentation(logits, (4, 4, 4), spacing=(8.0, 2.0, 2.0), labels=labels, resampling=LINEAR)
    # nearest along z (align corners false): output slices 0,1 come from slice 0, slices 2,3 from slice 1
    assert seg[:2].tolist() == np.ones((2, 4, 4)).tolist()
    assert seg[2:].tolist() == np.full((2, 4, 4), 2).tolist()
    iso = next_stage_segmentation(logits, (4, 4, 4), spacing=(2.0, 2.0, 2.0), labels=labels, resampling=LINEAR)
    assert iso.tolist() == seg.tolist()  # linear gives the same labels here, but through the linear path
    mixed = np.zeros((3, 2, 4, 4), dtype=np.float32)
    mixed[1, 0], mixed[0, 1] = 5.0, 4.0  # linear blend: output slice 1 (src 0.25) still label 1, slice 2 background
    lin = next_stage_segmentation(mixed, (4, 4, 4), spacing=(2.0, 2.0, 2.0), labels=labels, resampling=LINEAR)
    assert lin[:, 0, 0].tolist() == [1, 1, 0, 0]


def test_next_stage_segmentation_regions(rng: np.random.Generator) -> None:
    labels = LabelSpec.from_dataset_spec(tiny_dataset(labels={"background": 0, "whole": [1, 2], "core": 2},
                                                      regions_class_order=[1, 2]))
    logits = _smooth_logits(rng, 2, (6, 8, 7))
    seg = next_stage_segmentation(logits, (12, 15, 14), spacing=(2.0, 2.0, 2.0), labels=labels, resampling=LINEAR)
    assert np.mean(seg == _expected(logits, (12, 15, 14), (2.0, 2.0, 2.0), labels)) > 0.999
    assert set(np.unique(seg)) <= {0, 1, 2}


def test_saved_segmentation_is_read_by_the_training_reader(tmp_path: Path) -> None:
    seg = np.arange(5 * 6 * 7, dtype=np.uint8).reshape(5, 6, 7) % 3
    save_next_stage_segmentation(seg, tmp_path / "case_a.b2nd", patch_size=(4, 4, 4))
    assert [p.name for p in tmp_path.iterdir()] == ["case_a.b2nd"]  # no temporary files left
    arr = PreviousStage(tmp_path).open("case_a")
    assert arr.shape == (5, 6, 7)
    assert np.asarray(arr[...]).tolist() == seg.tolist()


# ---- plans and folds ----------------------------------------------------------------------------------------------
def test_previous_stages_and_ordering() -> None:
    plans = _plans()
    assert previous_stages(plans, ["3d_fullres", "3d_cascade_fullres"]) == {"3d_cascade_fullres": "3d_lowres"}
    assert with_previous_stages(plans, ["3d_cascade_fullres"]) == (["3d_lowres", "3d_cascade_fullres"],
                                                                   ["3d_lowres"])
    assert with_previous_stages(plans, ["2d", "3d_cascade_fullres", "3d_lowres"]) == (
        ["2d", "3d_lowres", "3d_cascade_fullres"], [])
    assert with_previous_stages(plans, ["3d_fullres"]) == (["3d_fullres"], [])


def test_previous_stage_must_point_back() -> None:
    plans = _plans()
    configs = {k: dict(v) for k, v in plans.configurations.items()}
    configs["3d_lowres"].pop("next_stage")
    with pytest.raises(PlansError, match="does not list '3d_cascade_fullres' in next_stage"):
        previous_stages(dataclasses.replace(plans, configurations=configs), ["3d_cascade_fullres"])
    configs = {k: dict(v) for k, v in plans.configurations.items() if k != "3d_lowres"}
    with pytest.raises(PlansError, match="not in the plans"):
        previous_stages(dataclasses.replace(plans, configurations=configs), ["3d_cascade_fullres"])


def test_split_folds(tmp_workspace: Workspace) -> None:
    cases = [f"c{i}" for i in range(7)]
    assert split_folds(tmp_workspace, DATASET, cases) == (0, 1, 2, 3, 4)  # created with the reference's 5 folds
    path = tmp_workspace.splits_file(DATASET)
    path.write_text(json.dumps([{"train": cases[3:], "val": cases[:3]}, {"train": cases[:3], "val": cases[3:6]}]))
    with pytest.raises(DatasetError, match=r"1 case\(s\) \(c6\) are in no fold's validation set"):
        split_folds(tmp_workspace, DATASET, cases)


# ---- a fold end to end with a random model --------------------------------------------------------------------------
@pytest.fixture
def lowres_fold(tmp_workspace: Workspace, rng: np.random.Generator) -> tuple[Workspace, Plans, list[str]]:
    """4 preprocessed cases (3d_lowres and 3d_fullres), 2-fold splits and a random 3d_lowres model (folds 0, 1)."""
    ws = tmp_workspace
    plans = _plans()
    dataset = tiny_dataset()
    labels = LabelSpec.from_dataset_spec(dataset)
    ws.preprocessed_dataset(DATASET).mkdir(parents=True)
    save_plans(ws.plans_file(DATASET, plans.plans_name), plans)
    cases = [f"case_{i}" for i in range(4)]
    for i, case in enumerate(cases):
        shape = (19 + i, 22, 17 + 2 * i)
        images = rng.normal(size=(1, *shape)).astype(np.float32)
        seg = rng.integers(0, 3, size=(1, *shape)).astype(np.int16)
        geometry = ImageGeometry(spacing=(1.0, 1.0, 1.0))
        for name in ("3d_lowres", "3d_fullres"):
            config = plans.configuration(name)
            pre = preprocess_case(images, seg, geometry, plans, config, labels=labels, case_id=case)
            write_case(ws.preprocessed_data(DATASET, config.data_identifier), pre.data, pre.seg, pre.properties,
                       patch_size=config.patch_size)
    ws.splits_file(DATASET).write_text(json.dumps([{"train": cases[2:], "val": cases[:2]},
                                                   {"train": cases[:2], "val": cases[2:]}]))
    write_random_model(ws.results_dataset(DATASET), plans, dataset, "3d_lowres", folds=(0, 1))
    return ws, plans, cases


def test_write_next_stage_predictions(lowres_fold) -> None:
    ws, plans, cases = lowres_fold
    out = next_stage_dir(ws, DATASET, "3d_lowres", "3d_cascade_fullres")
    assert pending_next_stage_cases(ws, DATASET, "3d_lowres", 0) == cases[:2]
    report = write_next_stage_predictions(ws, DATASET, "3d_lowres", 0, device="cpu")
    assert report.written == cases[:2] and not report.skipped and not report.missing
    assert report.folders == {"3d_cascade_fullres": out}
    assert sorted(p.name for p in out.iterdir()) == ["case_0.b2nd", "case_1.b2nd"]
    assert pending_next_stage_cases(ws, DATASET, "3d_lowres", 0) == []
    assert pending_next_stage_cases(ws, DATASET, "3d_lowres", 1) == cases[2:]

    fullres = CaseStore(ws.preprocessed_data(DATASET, plans.configuration("3d_fullres").data_identifier))
    lowres = CaseStore(ws.preprocessed_data(DATASET, "tiny_3d_lowres"))
    predictor = Predictor.from_model_dir(ws.model_dir(DATASET, "3d_lowres"), folds=[0], device="cpu")
    labels = LabelSpec.from_dataset_spec(tiny_dataset())
    for case in cases[:2]:
        written = np.asarray(PreviousStage(out).open(case)[...])
        target = fullres.properties(case).shape_after_resampling
        assert written.shape == target == tuple(fullres.open(case).data.shape[1:])
        assert lowres.properties(case).shape_after_resampling != target  # really resampled (2x coarser)
        assert written.dtype == np.uint8 and set(np.unique(written)) <= {0, 1, 2}
        logits = predictor.predict_logits(np.asarray(lowres.open(case).data[...])).numpy()
        expected = _expected(logits, target, (2.0, 2.0, 2.0), labels)
        assert np.mean(written == expected) > 0.999


def test_write_next_stage_is_idempotent_and_redoes_stale_files(lowres_fold) -> None:
    ws, _, cases = lowres_fold
    first = write_next_stage_predictions(ws, DATASET, "3d_lowres", 1, device="cpu")
    assert first.written == cases[2:]
    again = write_next_stage_predictions(ws, DATASET, "3d_lowres", 1, device="cpu")
    assert again.written == [] and again.skipped == cases[2:]
    ckpt = ws.model_dir(DATASET, "3d_lowres") / "fold_1" / "checkpoint_final.pth"
    future = ckpt.stat().st_mtime + 100
    os.utime(ckpt, (future, future))  # the fold was trained again after the files were written
    assert pending_next_stage_cases(ws, DATASET, "3d_lowres", 1) == cases[2:]
    assert write_next_stage_predictions(ws, DATASET, "3d_lowres", 1, device="cpu").written == cases[2:]
    assert write_next_stage_predictions(ws, DATASET, "3d_lowres", 1, device="cpu", overwrite=True).written == \
        cases[2:]


def test_cases_missing_from_the_next_stage_are_reported(lowres_fold) -> None:
    ws, plans, cases = lowres_fold
    folder = ws.preprocessed_data(DATASET, plans.configuration("3d_fullres").data_identifier)
    (folder / f"{cases[0]}.json").unlink()  # the case's record is what makes it present in a store
    report = write_next_stage_predictions(ws, DATASET, "3d_lowres", 0, device="cpu")
    assert report.missing == [f"3d_cascade_fullres/{cases[0]}"]
    assert report.written == [cases[1]]


def test_stale_preprocessing_is_refused(lowres_fold) -> None:
    ws, plans, _ = lowres_fold
    model_dir = ws.model_dir(DATASET, "3d_lowres")
    data = json.loads((model_dir / "plans.json").read_text(encoding="utf-8"))
    data["configurations"]["3d_lowres"]["spacing"] = [2.5, 2.0, 2.0]  # the model was trained on other plans
    (model_dir / "plans.json").write_text(json.dumps(data))
    with pytest.raises(DatasetError, match="preprocessed with other plans"):
        write_next_stage_predictions(ws, DATASET, "3d_lowres", 0, device="cpu")


def test_configuration_without_next_stage_is_refused(lowres_fold) -> None:
    ws, _, _ = lowres_fold
    with pytest.raises(Exception, match="has no next_stage"):
        write_next_stage_predictions(ws, DATASET, "3d_fullres", 0, device="cpu")


# ---- the run's job graph ------------------------------------------------------------------------------------------
def test_run_job_graph_waits_for_every_lowres_fold(monkeypatch: pytest.MonkeyPatch, tmp_workspace: Workspace) -> None:
    run_module = importlib.import_module("autounet.pipeline.run")  # the package exports a function `run`

    done = {("3d_lowres", 1)}  # a fold finished earlier (trained, validated, next stage written)
    calls: list[tuple[str, ...]] = []
    captured: dict[str, list] = {}
    real_run_jobs = run_module.run_jobs

    def fake_run_jobs(jobs, devices, launch):
        captured["jobs"] = list(jobs)
        return real_run_jobs(jobs, devices, launch)

    monkeypatch.setattr(run_module, "run_jobs", fake_run_jobs)
    monkeypatch.setattr(run_module, "_fold_complete", lambda ws, n, c, f, p, cfg: (c, f) in done)
    monkeypatch.setattr(run_module, "pending_next_stage_cases", lambda *a, **k: [])
    monkeypatch.setattr(run_module, "_train_in_process",
                        lambda ws, n, p, c, f, d, cfg, o, budget=None: calls.append(("train", c, str(f))))
    monkeypatch.setattr(run_module, "_write_next_stage",
                        lambda ws, n, p, c, f, d, cfg, say: calls.append(("next", c, str(f))))
    options = run_module.RunOptions(configurations=("3d_lowres", "3d_cascade_fullres"), folds=(0,),
                                    devices=("cpu",))
    summary = run_module.RunSummary(dataset_name=DATASET, plans_name="nnUNetPlans", configurations=[])
    folds = {"3d_lowres": (0, 1, 2), "3d_cascade_fullres": (0,)}
    run_module._train_all(tmp_workspace, DATASET, "nnUNetPlans", ["3d_lowres", "3d_cascade_fullres"], options,
                          summary, lambda step, msg: None, folds=folds,
                          cascades={"3d_cascade_fullres": "3d_lowres"}, ndims={"3d_lowres": 3, "3d_cascade_fullres": 3})
    jobs = {j.key: j for j in captured["jobs"]}
    assert sorted(jobs) == ["3d_cascade_fullres/fold_0", "3d_lowres/fold_0", "3d_lowres/fold_2"]
    assert jobs["3d_cascade_fullres/fold_0"].depends_on == ("3d_lowres/fold_0", "3d_lowres/fold_2")
    assert summary.reused == ["3d_lowres/fold_1"]
    assert calls == [("train", "3d_lowres", "0"), ("next", "3d_lowres", "0"), ("train", "3d_lowres", "2"),
                     ("next", "3d_lowres", "2"), ("train", "3d_cascade_fullres", "0")]


def test_run_refolds_lowres_when_its_next_stage_is_incomplete(monkeypatch: pytest.MonkeyPatch,
                                                              tmp_workspace: Workspace) -> None:
    run_module = importlib.import_module("autounet.pipeline.run")  # the package exports a function `run`

    calls: list[tuple[str, str]] = []
    monkeypatch.setattr(run_module, "_fold_complete", lambda *a: True)
    monkeypatch.setattr(run_module, "pending_next_stage_cases",
                        lambda ws, n, c, f, **k: ["case_x"] if f == 1 else [])
    monkeypatch.setattr(run_module, "_train_in_process", lambda ws, n, p, c, f, *a: calls.append(("train", f)))
    monkeypatch.setattr(run_module, "_write_next_stage", lambda ws, n, p, c, f, *a: calls.append(("next", f)))
    options = run_module.RunOptions(configurations=("3d_lowres",), folds=(0, 1), devices=("cpu",))
    summary = run_module.RunSummary(dataset_name=DATASET, plans_name="nnUNetPlans", configurations=[])
    run_module._train_all(tmp_workspace, DATASET, "nnUNetPlans", ["3d_lowres", "3d_cascade_fullres"], options,
                          summary, lambda step, msg: None, folds={"3d_lowres": (0, 1), "3d_cascade_fullres": (0,)},
                          cascades={"3d_cascade_fullres": "3d_lowres"}, ndims={"3d_lowres": 3, "3d_cascade_fullres": 3})
    assert summary.reused == ["3d_lowres/fold_0", "3d_cascade_fullres/fold_0"]
    assert calls == [("train", 1), ("next", 1)]  # _train_in_process skips training of a finished fold itself
