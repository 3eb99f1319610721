"""Validation report: statistics on known numbers, and the HTML rendered by headless Chromium."""

from __future__ import annotations

import base64
import io
import math
import re
import shutil
import subprocess

import numpy as np
import pytest
from PIL import Image

from autounet.errors import DatasetError
from autounet.report import build_report
from autounet.report.stats import best_and_worst, fold_scores, mean_sd_over_folds, suitability
from autounet.schemas.results import CaseResult, EvaluationSummary, LabelMetrics
from validation_fakes import DATASET, make_fake_results


def _lm(dice: float) -> LabelMetrics:
    return LabelMetrics(dice=dice, iou=dice, tp=0, fp=0, fn=0, tn=0, n_pred=0, n_ref=0, nsd=dice / 2, hd95=1.0)


def _summary(values: dict[str, tuple[float, float]]) -> EvaluationSummary:
    cases = tuple(CaseResult(case=c, prediction_file=c, reference_file=c, metrics={"1": _lm(a), "2": _lm(b)})
                  for c, (a, b) in values.items())
    return EvaluationSummary(labels=("1", "2"), metric_per_case=cases, mean={}, foreground_mean={}, nan_cases={})


def test_fold_scores_and_mean_sd():
    s = _summary({"a": (0.8, 0.6), "b": (1.0, math.nan), "c": (0.5, 0.7), "d": (0.7, 0.9)})
    folds = {"a": 0, "b": 0, "c": 1, "d": 1}
    scores = fold_scores(s, folds, "Dice")
    assert scores[0]["1"] == pytest.approx(0.9) and scores[0]["2"] == pytest.approx(0.6)
    assert scores[0]["foreground"] == pytest.approx(0.75)
    assert scores[1]["foreground"] == pytest.approx((0.6 + 0.8) / 2)
    ms = mean_sd_over_folds(scores, "foreground")
    assert ms.mean == pytest.approx(0.725) and ms.sd == pytest.approx(np.std([0.75, 0.7], ddof=1))
    assert fold_scores(s, folds, "NSD")[1]["1"] == pytest.approx(0.3)
    assert ms.text(2) == "0.72 ± 0.04"


def test_suitability_ratio_from_known_numbers():
    scores = {"A": {0: 0.80, 1: 0.82, 2: 0.84}, "B": {0: 0.70, 1: 0.71, 2: 0.75}}
    s = suitability(scores)
    sd_a, sd_b = np.std([0.80, 0.82, 0.84], ddof=1), np.std([0.70, 0.71, 0.75], ddof=1)
    assert s.sd_within["A"] == pytest.approx(sd_a)
    assert s.pooled_sd_within == pytest.approx(math.sqrt((sd_a**2 + sd_b**2) / 2))
    assert s.sd_between == pytest.approx(np.std([0.82, np.mean([0.70, 0.71, 0.75])], ddof=1))
    assert s.ratio == pytest.approx(s.sd_between / s.pooled_sd_within)
    assert s.ratio > 1 and "informative" in s.verdict()
    close = suitability({"A": {0: 0.80, 1: 0.90}, "B": {0: 0.86, 1: 0.85}})
    assert close.ratio < 1 and "cannot rank" in close.verdict()
    assert math.isnan(suitability({"A": {0: 0.8, 1: 0.9}}).ratio)


def test_best_and_worst_skip_nan():
    best, worst = best_and_worst({"a": 0.9, "b": 0.1, "c": math.nan, "d": 0.5, "e": 0.7}, 2)
    assert best == ["a", "e"] and worst == ["b", "d"]


def test_report_requires_find_best(tmp_path):
    fake = make_fake_results(tmp_path / "ws", configurations={"3d_fullres": 1.0})
    with pytest.raises(DatasetError, match="find-best"):
        build_report(fake.workspace, DATASET)


@pytest.fixture(scope="module")
def report_html(tmp_path_factory):
    from autounet.ensembling import find_best

    root = tmp_path_factory.mktemp("report")
    fake = make_fake_results(root / "ws", configurations={"3d_fullres": 1.0, "3d_lowres": 1.1, "2d": 1.3})
    find_best(fake.workspace, DATASET, configurations=("2d", "3d_fullres", "3d_lowres"))
    return build_report(fake.workspace, DATASET)


def test_report_content(report_html):
    text = report_html.read_text(encoding="utf-8")
    assert text.count("<table") >= 2
    assert "ensemble: 3d_fullres + 3d_lowres" in text and "1 (a)" in text and "2 (b)" in text
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', text)
    assert len(images) == 1 + 3 + 4  # suitability, 3 training-curve figures, 2 best + 2 worst overlays
    for data in images:
        img = Image.open(io.BytesIO(base64.b64decode(data)))
        img.load()
        assert img.size[0] > 100 and np.asarray(img).std() > 5  # a real picture, not blank


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install -y chromium)")
def test_report_renders_in_headless_chromium(report_html, tmp_path):
    flags = [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
    dom = subprocess.run([*flags, "--dump-dom", report_html.as_uri()], capture_output=True, text=True, encoding="utf-8", errors="replace",
                         timeout=120, check=True).stdout
    assert dom.count("<table") >= 2 and dom.count("<img") == 8
    assert "Validation report: Dataset900_Fake" in dom
    shot = tmp_path / "shot.png"
    subprocess.run([*flags, "--window-size=1400,2000", f"--screenshot={shot}", report_html.as_uri()],
                   capture_output=True, timeout=120, check=True, cwd=tmp_path)
    pixels = np.asarray(Image.open(shot).convert("RGB"), dtype=np.float32)
    assert pixels.shape[:2] == (2000, 1400)
    assert pixels.std() > 10  # text, tables and figures were drawn
    # the figures are drawn: matplotlib's default blue (C0) appears in the screenshot
    blue = (np.abs(pixels - np.array([31, 119, 180])).sum(-1) < 30).sum()
    assert blue > 500


def test_overlay_of_a_colour_image_keeps_its_colours(tmp_path):
    """An RGB photograph (one file, 3 channels) is drawn in colour under the labels, not as its red channel."""
    from autounet.report import figures
    from autounet.report.build import _image

    rgb = np.zeros((3, 1, 20, 24), np.float32)
    rgb[1] = 255.0  # pure green
    path = tmp_path / "photo_0000.png"
    Image.fromarray(np.moveaxis(rgb[:, 0], 0, -1).astype(np.uint8), mode="RGB").save(path)

    class Files:
        images = (path,)

    image = _image(Files())
    assert image.shape == (1, 20, 24, 3)
    seg = np.zeros((1, 20, 24), np.uint8)
    seg[0, 5:10, 5:10] = 1
    png = Image.open(io.BytesIO(figures.case_overlay(image, seg, seg, title="photo"))).convert("RGB")
    pixels = np.asarray(png).reshape(-1, 3).astype(int)
    green = (pixels[:, 1] > 200) & (pixels[:, 0] < 60) & (pixels[:, 2] < 60)
    assert green.sum() > 500  # the unlabelled part of the photograph is drawn green
