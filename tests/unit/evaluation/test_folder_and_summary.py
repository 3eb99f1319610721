"""Folder evaluation (pairing, errors, label specs) and the summary's aggregation and file formats."""

from __future__ import annotations

import csv
import json
import math

import numpy as np
import pytest

from autounet.errors import DatasetError, SchemaError, UsageError
from autounet.evaluation import evaluate, infer_file_ending, load_summary, summarize
from autounet.io import ImageGeometry, write_segmentation
from autounet.labels import LabelSpec
from autounet.schemas.results import CaseResult, LabelMetrics, label_key, parse_label_key

G = ImageGeometry(spacing=(1.0, 1.0, 1.0))


def _lm(dice, nsd=None, hd95=None):
    return LabelMetrics(dice=dice, iou=dice, tp=1, fp=2, fn=3, tn=4, n_pred=3, n_ref=4, nsd=nsd, hd95=hd95)


def test_summary_means_ignore_nan_and_count_it():
    cases = [CaseResult("a", "a", "a", {"1": _lm(0.8, 0.9, 1.0), "2": _lm(math.nan, math.nan, math.nan)}),
             CaseResult("b", "b", "b", {"1": _lm(0.6, 0.7, math.nan), "2": _lm(math.nan, math.nan, math.nan)})]
    s = summarize(cases, ["1", "2"], nsd_tolerance_mm=1.0)
    assert s.mean["1"]["Dice"] == pytest.approx(0.7) and s.mean["1"]["HD95"] == 1.0
    assert math.isnan(s.mean["2"]["Dice"])
    # the reference's np.mean would give NaN here (§12.13); ours ignores the all-NaN class
    assert s.foreground_mean["Dice"] == pytest.approx(0.7)
    assert s.nan_cases == {"1": {"Dice": 0, "IoU": 0, "NSD": 0, "HD95": 1},
                           "2": {"Dice": 2, "IoU": 2, "NSD": 2, "HD95": 2}}
    assert s.mean["1"]["TP"] == 1.0


def test_label_keys_round_trip():
    assert label_key(1) == "1" and label_key((1, 2)) == "(1, 2)" and label_key((3,)) == "(3,)"
    for k in (1, (1, 2), (3,)):
        assert parse_label_key(label_key(k)) == k
    with pytest.raises(SchemaError):
        parse_label_key("one")


def _pair(tmp_path, ref, pred, name="c.nii.gz"):
    (tmp_path / "ref").mkdir(exist_ok=True)
    (tmp_path / "pred").mkdir(exist_ok=True)
    write_segmentation(ref, tmp_path / "ref" / name, G)
    write_segmentation(pred, tmp_path / "pred" / name, G)


def test_folder_evaluation_with_label_spec_and_file_formats(tmp_path):
    spec = LabelSpec.from_labels({"background": 0, "a": 1, "b": 2, "ignore": 3})
    ref = np.zeros((4, 5, 6), np.uint8)
    ref[:2] = 1
    ref[3] = 3
    pred = np.ones_like(ref)
    _pair(tmp_path, ref, pred)
    (tmp_path / "pred" / "summary.json").write_text("{}")  # not a segmentation: ignored
    out = tmp_path / "out" / "s.json"
    s = evaluate(tmp_path / "pred", tmp_path / "ref", labels=spec, output=out)
    assert s.labels == ("1", "2") and s.ignore_label == 3
    m = s.metric_per_case[0].metrics["1"]
    assert (m.tp, m.fp, m.fn, m.tn) == (60, 30, 0, 0)  # slice 3 (ignore) excluded
    assert math.isnan(s.mean["2"]["Dice"]) and s.nan_cases["2"]["Dice"] == 1
    again = load_summary(out)
    assert json.dumps(again.to_dict()) == json.dumps(s.to_dict())  # NaN-aware equality
    raw = json.loads(out.read_text(encoding="utf-8"))
    assert list(raw)[:3] == ["schema", "schema_version", "provenance"]
    assert {"metric_per_case", "mean", "foreground_mean", "nan_cases"} <= set(raw)
    rows = list(csv.DictReader((tmp_path / "out" / "s_per_case.csv").open(encoding="utf-8")))
    assert [r["label"] for r in rows] == ["1", "2"] and rows[1]["Dice"] == "NaN" and rows[0]["TP"] == "60"


def test_pairing_errors_name_the_files(tmp_path):
    seg = np.zeros((3, 3, 3), np.uint8)
    _pair(tmp_path, seg, seg, "a.nii.gz")
    write_segmentation(seg, tmp_path / "pred" / "extra.nii.gz", G)
    with pytest.raises(DatasetError, match="extra.nii.gz"):
        evaluate(tmp_path / "pred", tmp_path / "ref", labels=[1])
    (tmp_path / "pred" / "extra.nii.gz").unlink()
    write_segmentation(seg, tmp_path / "ref" / "b.nii.gz", G)
    assert len(evaluate(tmp_path / "pred", tmp_path / "ref", labels=[1]).metric_per_case) == 1
    with pytest.raises(DatasetError, match="b.nii.gz"):
        evaluate(tmp_path / "pred", tmp_path / "ref", labels=[1], strict=True)
    write_segmentation(np.zeros((3, 3, 4), np.uint8), tmp_path / "pred" / "a.nii.gz", G)
    with pytest.raises(DatasetError, match="Case a: .*shape"):
        evaluate(tmp_path / "pred", tmp_path / "ref", labels=[1])
    with pytest.raises(UsageError, match="No labels"):
        evaluate(tmp_path / "pred", tmp_path / "ref", labels=[])
    with pytest.raises(DatasetError, match="not found"):
        evaluate(tmp_path / "nope", tmp_path / "ref", labels=[1], file_ending=".nii.gz")


def test_file_ending_inference(tmp_path):
    seg = np.zeros((2, 2, 2), np.uint8)
    write_segmentation(seg, tmp_path / "a.nii.gz", G)
    write_segmentation(seg, tmp_path / "b.nii.gz", G)
    write_segmentation(seg, tmp_path / "c.nrrd", G)
    (tmp_path / "c.npz").write_bytes(b"")
    assert infer_file_ending(tmp_path) == ".nii.gz"
    write_segmentation(seg, tmp_path / "d.nrrd", G)
    with pytest.raises(UsageError, match="file ending"):
        infer_file_ending(tmp_path)
