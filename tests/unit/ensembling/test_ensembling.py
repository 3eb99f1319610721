"""Saved probabilities, folder ensembles, cross-validation merging and model selection on fake trained models."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from autounet.ensembling import (
    accumulate_crossval,
    ensemble,
    ensemble_crossvalidation,
    find_best,
    inference_commands,
    load_inference_information,
    read_probabilities,
    write_probabilities,
)
from autounet.errors import DatasetError, SchemaError
from autounet.evaluation import load_summary
from autounet.io import ImageGeometry, read_segmentation
from autounet.labels import LabelSpec
from autounet.postprocessing import apply_steps, load_postprocessing
from validation_fakes import DATASET, make_fake_results

LABELS = LabelSpec.from_labels({"background": 0, "a": 1, "b": 2})
GEOM = ImageGeometry(spacing=(1.5, 1.0, 1.0))


def _probs(rng, shape=(3, 4, 5, 6)):
    x = rng.random(shape).astype(np.float32)
    return x / x.sum(0, keepdims=True)


def test_probabilities_round_trip_and_errors(tmp_path, rng):
    p = _probs(rng)
    write_probabilities(tmp_path, "c1", p, geometry=GEOM, labels=LABELS, file_ending=".nii.gz")
    got, record = read_probabilities(tmp_path, "c1")
    assert got.dtype == np.float32 and np.array_equal(got, p)
    assert record.shape == p.shape and record.file_ending == ".nii.gz"
    assert ImageGeometry.from_dict(record.geometry) == GEOM
    with np.load(tmp_path / "c1.npz") as z:  # the reference's key
        assert list(z.files) == ["probabilities"]
    with pytest.raises(SchemaError, match="K=3"):
        write_probabilities(tmp_path, "c2", p[:2], geometry=GEOM, labels=LABELS, file_ending=".nii.gz")
    np.savez_compressed(tmp_path / "c1.npz", probabilities=p[:, :2])
    with pytest.raises(DatasetError, match="says"):
        read_probabilities(tmp_path, "c1")


def _folder(tmp_path, name, arrays, labels=LABELS):
    d = tmp_path / name
    d.mkdir()
    for case, p in arrays.items():
        write_probabilities(d, case, p, geometry=GEOM, labels=labels, file_ending=".nii.gz")
    return d


def test_ensemble_averages_and_writes_metadata(tmp_path, rng):
    a = {c: _probs(rng) for c in ("x", "y")}
    b = {c: _probs(rng) for c in ("x", "y")}
    da, db = _folder(tmp_path, "a", a), _folder(tmp_path, "b", b)
    (da / "plans.json").write_text('{"p": 1}')
    (db / "dataset.json").write_text('{"d": 2}')
    out = tmp_path / "out"
    spec = ensemble([da, db], out, save_probabilities=True)
    assert spec.cases == ("x", "y") and spec.file_ending == ".nii.gz" and spec.probabilities_saved
    for case in ("x", "y"):
        mean = (a[case] + b[case]) / np.float32(2)
        seg, geom = read_segmentation(out / f"{case}.nii.gz")
        assert np.array_equal(seg[0], mean.argmax(0))
        assert np.allclose(geom.spacing, GEOM.spacing)
        assert np.array_equal(read_probabilities(out, case)[0], mean)
    assert json.loads((out / "plans.json").read_text(encoding="utf-8")) == {"p": 1}
    assert json.loads((out / "dataset.json").read_text(encoding="utf-8")) == {"d": 2}
    assert (out / "ensemble.json").is_file()


def test_ensemble_region_mode_thresholds_in_class_order(tmp_path):
    regions = LabelSpec.from_labels({"background": 0, "whole": [1, 2], "core": 2}, regions_class_order=[1, 2])
    p1 = np.zeros((2, 1, 2, 2), np.float32)
    p1[0] = 0.9
    p1[1, 0, 0, 0] = 0.8
    p2 = p1.copy()
    p2[1, 0, 0, 0] = 0.1  # mean 0.45: below threshold
    p2[1, 0, 1, 1] = 1.0
    p1[1, 0, 1, 1] = 0.2  # mean 0.6: core
    da = _folder(tmp_path, "a", {"r": p1}, regions)
    db = _folder(tmp_path, "b", {"r": p2}, regions)
    ensemble([da, db], tmp_path / "out")
    seg = read_segmentation(tmp_path / "out" / "r.nii.gz")[0][0, 0]
    assert seg.tolist() == [[1, 1], [1, 2]]


def test_ensemble_rejects_mismatched_cases(tmp_path, rng):
    da = _folder(tmp_path, "a", {"x": _probs(rng), "y": _probs(rng)})
    db = _folder(tmp_path, "b", {"x": _probs(rng)})
    with pytest.raises(DatasetError, match="different cases"):
        ensemble([da, db], tmp_path / "out")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DatasetError, match="--save-probabilities"):
        ensemble([da, empty], tmp_path / "out")


def test_crossval_merging_checks_folds(tmp_path):
    fake = make_fake_results(tmp_path / "ws", configurations={"3d_fullres": 0.9})
    model = fake.model_dir("3d_fullres")
    merged, summary = accumulate_crossval(model, fake.gt_dir, labels=fake.labels, file_ending=".nii.gz")
    assert merged.name == "crossval_results_folds_0_1_2_3_4"
    assert sorted(p.name for p in merged.glob("*.nii.gz")) == [f"{c}.nii.gz" for c in fake.cases]
    assert (merged / "plans.json").is_file() and (merged / "summary.json").is_file()
    assert (merged / "summary_per_case.csv").is_file()
    assert len(summary.metric_per_case) == len(fake.cases)
    # an overlapping fold is refused
    shutil.copy(model / "fold_0" / "validation" / "case_000.nii.gz", model / "fold_1" / "validation")
    with pytest.raises(DatasetError, match="must not overlap"):
        accumulate_crossval(model, fake.gt_dir, labels=fake.labels, file_ending=".nii.gz")
    with pytest.raises(DatasetError, match="fold 7"):
        accumulate_crossval(model, fake.gt_dir, labels=fake.labels, file_ending=".nii.gz", folds=(0, 7))


def test_crossval_ensemble_requires_probabilities(tmp_path):
    fake = make_fake_results(tmp_path / "ws", configurations={"3d_fullres": 0.9, "2d": 1.0})
    for f in (fake.model_dir("2d") / "fold_3" / "validation").glob("*.npz"):
        f.unlink()
    with pytest.raises(DatasetError, match="no saved probabilities"):
        ensemble_crossvalidation([fake.model_dir("3d_fullres"), fake.model_dir("2d")], tmp_path / "e",
                                 folds=range(5))


def _independent_score(fake, info) -> float:
    """Average the saved CV probabilities of the selected models, argmax, post-process, score with numpy."""
    decision = load_postprocessing(info.postprocessing_file)
    per_label = {1: [], 2: []}
    for case in fake.cases:
        fold = fake.case_fold[case]
        probs = [read_probabilities(fake.model_dir(m.configuration) / f"fold_{fold}" / "validation", case)[0]
                 for m in info.selected_models]
        total = probs[0].copy()
        for p in probs[1:]:
            total += p
        total /= np.float32(len(probs))
        seg = apply_steps(total.argmax(0).astype(np.uint8), decision.steps)
        ref = read_segmentation(fake.gt_dir / f"{case}.nii.gz")[0][0]
        for lab in (1, 2):
            r, p = ref == lab, seg == lab
            tp, fp, fn = (r & p).sum(), (~r & p).sum(), (r & ~p).sum()
            per_label[lab].append(np.nan if tp + fp + fn == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean([np.nanmean(per_label[1]), np.nanmean(per_label[2])]))


def test_find_best_end_to_end_reproduces_the_reported_score(tmp_path):
    fake = make_fake_results(tmp_path / "ws", configurations={"3d_fullres": 1.1, "3d_lowres": 1.1,
                                                            "3d_cascade_fullres": 1.2})
    info = find_best(fake.workspace, DATASET, configurations=("3d_fullres", "3d_lowres", "3d_cascade_fullres"))
    results = fake.workspace.results_dataset(DATASET)
    assert [m.configuration for m in info.considered_models] == ["3d_fullres", "3d_lowres", "3d_cascade_fullres"]
    assert len(info.all_results) == 3 + 3
    assert list(info.all_results)[3].startswith("ensemble___nnUNetTrainer__nnUNetPlans__3d_fullres___")
    assert info.best == max(info.all_results, key=lambda k: info.all_results[k])
    stored = load_inference_information(results / "inference_information.json")
    assert stored == info
    # every score is the merged folder's summary score
    for name, source in info.extra["sources"].items():
        assert load_summary(Path(source) / "summary.json").score == info.all_results[name]
    # reproduce: average the saved probabilities, post-process, score -> the reported post-pp score
    assert _independent_score(fake, info) == info.result_on_crossval_post_pp  # exactly
    text = (results / "inference_instructions.txt").read_text(encoding="utf-8")
    commands = [ln for ln in text.splitlines() if ln.startswith("autounet ")]
    assert commands == inference_commands(info, previous_stages={
        m.identifier: ("3d_lowres" if m.configuration == "3d_cascade_fullres" else None)
        for m in info.selected_models})


def test_find_best_errors_for_untrained_configuration_in_plans(tmp_path):
    fake = make_fake_results(tmp_path / "ws", configurations={"3d_fullres": 1.0})
    with pytest.raises(DatasetError, match="2d"):
        find_best(fake.workspace, DATASET, configurations=("2d", "3d_fullres"))
    info = find_best(fake.workspace, DATASET, configurations=("3d_fullres", "3d_unknown"))
    assert info.best == "nnUNetTrainer__nnUNetPlans__3d_fullres" and not info.is_ensemble
    assert math.isfinite(info.result_on_crossval_post_pp)


def test_instructions_for_a_cascade_include_the_lowres_step(tmp_path):
    fake = make_fake_results(tmp_path / "ws", configurations={"3d_cascade_fullres": 0.5, "3d_fullres": 2.5})
    info = find_best(fake.workspace, DATASET, configurations=("3d_fullres", "3d_cascade_fullres"),
                     allow_ensembling=False)
    assert info.best.endswith("3d_cascade_fullres")
    text = (fake.workspace.results_dataset(DATASET) / "inference_instructions.txt").read_text(encoding="utf-8")
    commands = [ln for ln in text.splitlines() if ln.startswith("autounet ")]
    assert commands[0].startswith("autounet predict -i INPUT_FOLDER -o OUTPUT_FOLDER_3D_LOWRES ")
    assert "-c 3d_lowres" in commands[0]
    assert "-c 3d_cascade_fullres" in commands[1]
    assert "--prev-stage OUTPUT_FOLDER_3D_LOWRES" in commands[1]
    assert commands[2].startswith("autounet postprocess -i OUTPUT_FOLDER -o OUTPUT_FOLDER_PP --decision ")
    assert len(commands) == 3


def test_ensemble_instructions_save_probabilities_and_ensemble(tmp_path):
    fake = make_fake_results(tmp_path / "ws", configurations={"3d_fullres": 1.0, "3d_lowres": 1.0})
    info = find_best(fake.workspace, DATASET, configurations=("3d_fullres", "3d_lowres"))
    forced = type(info)(**{**info.__dict__, "selected_models": info.considered_models})
    cmds = inference_commands(forced, previous_stages={}, workspace_flag="/ws")
    assert cmds[0].endswith("--save-probabilities --workspace /ws") and "-o OUTPUT_FOLDER_MODEL_1" in cmds[0]
    assert cmds[2] == "autounet ensemble -i OUTPUT_FOLDER_MODEL_1 OUTPUT_FOLDER_MODEL_2 -o OUTPUT_FOLDER"
