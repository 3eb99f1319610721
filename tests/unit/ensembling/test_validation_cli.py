"""The validation commands in-process: evaluate, postprocess, ensemble, find-best, report.

The find-best test replays the printed instructions' ensemble and post-processing steps on the saved
cross-validation probabilities with the CLI and checks that the reported score comes back exactly.
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from autounet.cli import main
from autounet.evaluation import load_summary
from autounet.io import ImageGeometry, write_segmentation
from validation_fakes import DATASET, make_fake_results


def test_evaluate_cli_writes_summary_and_csv(tmp_path, capsys):
    pred, ref = tmp_path / "p", tmp_path / "r"
    pred.mkdir()
    ref.mkdir()
    r = np.zeros((6, 8, 8), np.uint8)
    r[1:4, 1:5, 1:5] = 1
    r[1:4, 5:7, 1:5] = 2
    p = r.copy()
    p[1, 1, 1] = 0
    g = ImageGeometry(spacing=(2.0, 1.0, 1.0))
    write_segmentation(r, ref / "a.nii.gz", g)
    write_segmentation(p, pred / "a.nii.gz", g)
    assert main(["evaluate", str(pred), str(ref), "-l", "1", "2", "1,2", "--nsd-tolerance", "1", "-j", "1"]) == 0
    out = capsys.readouterr().out
    assert "foreground" in out and "(1, 2)" in out
    s = load_summary(pred / "summary.json")
    assert s.labels == ("1", "2", "(1, 2)") and s.nsd_tolerance_mm == 1.0
    assert s.mean["1"]["TP"] == 47 and s.mean["1"]["FN"] == 1
    csv = (pred / "summary_per_case.csv").read_text(encoding="utf-8").splitlines()
    assert csv[0].startswith("case,label,Dice,IoU,TP,FP,FN,TN,n_pred,n_ref,NSD,HD95")
    assert len(csv) == 1 + 3
    assert main(["evaluate", str(pred), str(ref), "-l", "1", "--no-surface", "-o", str(tmp_path / "s.json"),
                 "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert "NSD" not in data["foreground_mean"]
    assert main(["evaluate", str(pred), str(ref), "-l", "x"]) == 2  # usage error


def test_find_best_cli_and_replaying_the_instructions(tmp_path, capsys):
    fake = make_fake_results(tmp_path / "ws", configurations={"3d_fullres": 1.0, "3d_lowres": 1.0})
    ws = ["--workspace", str(tmp_path / "ws")]
    assert main(["find-best", "900", "-c", "3d_fullres", "3d_lowres", "-j", "1", "--json", *ws]) == 0
    info = json.loads(capsys.readouterr().out)
    best = info["best_model_or_ensemble"]
    assert best["name"].startswith("ensemble___")
    text = (fake.workspace.results_dataset(DATASET) / "inference_instructions.txt").read_text(encoding="utf-8")
    commands = [ln.split() for ln in text.splitlines() if ln.startswith("autounet ")]
    assert [c[1] for c in commands] == ["predict", "predict", "ensemble", "postprocess"]
    assert commands[0][-2:] == ["--workspace", str((tmp_path / "ws").resolve())]
    # stand-in for the two predict commands: each member's saved CV probabilities in one folder
    for j, configuration in enumerate(("3d_fullres", "3d_lowres"), start=1):
        out = tmp_path / f"OUTPUT_FOLDER_MODEL_{j}"
        out.mkdir()
        for name in ("plans.json", "dataset.json"):  # autounet predict writes these beside its outputs
            shutil.copy(fake.model_dir(configuration) / name, out / name)
        for f in fake.model_dir(configuration).glob("fold_*/validation/*"):
            if f.name.endswith((".npz", ".meta.json")):
                shutil.copy(f, out / f.name)
    replay = {"OUTPUT_FOLDER": str(tmp_path / "OUTPUT_FOLDER"), "OUTPUT_FOLDER_PP": str(tmp_path / "PP"),
              "OUTPUT_FOLDER_MODEL_1": str(tmp_path / "OUTPUT_FOLDER_MODEL_1"),
              "OUTPUT_FOLDER_MODEL_2": str(tmp_path / "OUTPUT_FOLDER_MODEL_2")}
    for command in commands[2:]:
        args = [replay.get(a, a) for a in command[1:]]
        assert main([*args, "-j", "1"]) == 0
    assert main(["evaluate", str(tmp_path / "PP"), str(fake.gt_dir), "-d", "900", "-j", "1", *ws]) == 0
    assert load_summary(tmp_path / "PP" / "summary.json").score == best["result_on_crossval_post_pp"]
    assert (tmp_path / "PP" / "plans.json").is_file()  # metadata travels with the outputs
    assert main(["report", "900", *ws]) == 0
    assert (fake.workspace.results_dataset(DATASET) / "report" / "index.html").is_file()


def test_postprocess_cli_determine_then_apply(tmp_path, capsys):
    fake = make_fake_results(tmp_path / "ws", configurations={"3d_fullres": 0.8})
    folder = tmp_path / "cv"
    folder.mkdir()
    for f in fake.model_dir("3d_fullres").glob("fold_*/validation/*.nii.gz"):
        shutil.copy(f, folder / f.name)
    assert main(["postprocess", "-i", str(folder), "--determine", str(fake.gt_dir), "-l", "1", "2", "-j", "1"]) == 0
    assert "keep largest component of [1, 2]" in capsys.readouterr().out
    decision = folder / "postprocessing.json"
    assert main(["postprocess", "-i", str(folder), "-o", str(tmp_path / "pp"), "--decision", str(decision)]) == 0
    assert len(list((tmp_path / "pp").glob("*.nii.gz"))) == len(fake.cases)
    assert main(["postprocess", "-i", str(folder), "-o", str(tmp_path / "pp")]) == 2


def test_ensemble_cli_reports_missing_probabilities(tmp_path, capsys):
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    assert main(["ensemble", "-i", str(tmp_path / "a"), str(tmp_path / "b"), "-o", str(tmp_path / "o")]) == 1
    assert "--save-probabilities" in capsys.readouterr().err


@pytest.mark.parametrize("text,want", [("1", 1), ("1,2", (1, 2)), ("(1, 2)", (1, 2)), ("3,", (3,)), ("1+2", (1, 2))])
def test_label_parsing(text, want):
    from autounet.cli.evaluate import parse_label

    assert parse_label(text) == want
