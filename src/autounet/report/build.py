"""Assemble the static HTML validation report of a dataset after ``find_best``.

Sections: the selection result; the cross-validation table (per configuration/ensemble and class, Dice and NSD
mean ± SD over folds); the dataset-suitability figure; the training curves of every fold; overlays of the best
and worst cases of the chosen model. Figures are PNGs embedded as data URIs, so the page is one self-contained
file (no server, no external assets).
"""

from __future__ import annotations

import base64
import html
import math
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from autounet._atomic import write_bytes_atomic
from autounet._log import get_logger
from autounet.ensembling.crossval import fold_of_cases
from autounet.errors import DatasetError
from autounet.evaluation.folder import read_label_map
from autounet.io import segmentation_ending
from autounet.report import figures
from autounet.report.stats import (
    FOREGROUND,
    best_and_worst,
    case_scores,
    fold_scores,
    mean_sd_over_folds,
    suitability,
)
from autounet.schemas.dataset import load_dataset_spec
from autounet.schemas.results import EvaluationSummary, InferenceInformation, load_inference_information, load_summary
from autounet.schemas.training_log import read_training_log
from autounet.workspace import (
    DATASET_JSON,
    INFERENCE_INFORMATION_JSON,
    POSTPROCESSED_DIR,
    PROGRESS_PNG,
    REPORT_DIR,
    REPORT_HTML,
    SUMMARY_JSON,
    TRAINING_LOG_JSONL,
    Workspace,
    fold_dir_name,
)

log = get_logger(__name__)
TRAINING_LOG = TRAINING_LOG_JSONL


@dataclass(frozen=True)
class Entry:
    """One evaluated model or ensemble with its summary and the fold of each case."""

    name: str
    source: Path
    summary: EvaluationSummary
    case_folds: dict[str, int]
    is_ensemble: bool


def _img(png: bytes, alt: str) -> str:
    data = base64.b64encode(png).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{data}">'


def _entries(workspace: Workspace, dataset: str, info: InferenceInformation, ending: str) -> list[Entry]:
    sources = info.extra.get("sources") or {}
    model_dirs = {m.identifier: workspace.model_dir(dataset, m.configuration, plans_name=m.plans, trainer=m.trainer)
                  for m in info.considered_models}
    folds = {name: fold_of_cases(d, info.folds, ending) for name, d in model_dirs.items()}
    out = []
    for name in info.all_results:
        source = Path(sources.get(name, ""))
        if not (source / SUMMARY_JSON).is_file():
            log.warning("No summary for %s (%s); left out of the report.", name, source)
            continue
        is_ensemble = name not in model_dirs
        first_member = name.split("___")[1] if is_ensemble else name  # ensembles: the first member's folds
        out.append(Entry(name, source, load_summary(source / SUMMARY_JSON), folds.get(first_member or "", {}),
                         is_ensemble))
    return out


def _short(name: str) -> str:
    if name.startswith("ensemble___"):
        parts = name.split("___")
        return "ensemble: " + " + ".join(p.split("__")[-1] for p in parts[1:-1])
    return name.split("__")[-1]


def cv_table(entries: Sequence[Entry], *, best: str, names: Mapping[str, str] | None = None) -> str:
    """HTML table: rows = models/ensembles, columns = classes (and foreground) × (Dice, NSD), mean ± SD over folds.

    ``names`` maps label keys to display names (``"1"`` -> ``"1 (anterior)"``).
    """
    if not entries:
        return "<p>No cross-validation summaries.</p>"
    labels = [*entries[0].summary.labels, FOREGROUND]
    names = names or {}
    has_nsd = all("NSD" in e.summary.foreground_mean for e in entries)
    metrics = ["Dice", "NSD"] if has_nsd else ["Dice"]
    head1 = "".join(f'<th colspan="{len(metrics)}">{html.escape(names.get(k, k))}</th>' for k in labels)
    head2 = "".join(f"<th>{m}</th>" for _ in labels for m in metrics)
    rows = []
    for e in entries:
        per_metric = {m: fold_scores(e.summary, e.case_folds, m) for m in metrics}
        cells = "".join(f"<td>{mean_sd_over_folds(per_metric[m], k).text()}</td>" for k in labels for m in metrics)
        cls = ' class="best"' if e.name == best else ""
        rows.append(f'<tr{cls}><td title="{html.escape(e.name)}">{html.escape(_short(e.name))}</td>'
                    f"<td>{e.summary.score:.4f}</td>{cells}</tr>")
    return (f'<table><thead><tr><th rowspan="2">model</th><th rowspan="2">pooled fg Dice</th>{head1}</tr>'
            f"<tr>{head2}</tr></thead><tbody>{''.join(rows)}</tbody></table>")


def _label_names(labels: Mapping[str, Any]) -> dict[str, str]:
    """``{"1": "1 (anterior)", "(1, 2)": "(1, 2) (whole)"}`` from a dataset.json ``labels`` mapping."""
    out = {}
    for name, value in labels.items():
        if name in ("background", "ignore"):
            continue
        values = tuple(value) if isinstance(value, (tuple, list)) else (value,)
        keys = [str(values)] + ([str(values[0])] if len(values) == 1 else [])
        for key in keys:
            out[key] = f"{key} ({name})"
    return out


def _suitability_section(entries: Sequence[Entry]) -> str:
    singles = [e for e in entries if not e.is_ensemble]
    scores = {e.name: {f: s[FOREGROUND] for f, s in fold_scores(e.summary, e.case_folds, "Dice").items()}
              for e in singles}
    s = suitability(scores)
    rows = "".join(f"<tr><td>{html.escape(_short(m))}</td><td>{_fmt(s.sd_within[m])}</td></tr>" for m in s.methods)
    table = (f"<table><tr><th>method</th><th>SD within (over folds)</th></tr>{rows}"
             f"<tr><td>pooled within</td><td>{_fmt(s.pooled_sd_within)}</td></tr>"
             f"<tr><td>between methods</td><td>{_fmt(s.sd_between)}</td></tr>"
             f"<tr><td><b>ratio between / within</b></td><td><b>{_fmt(s.ratio, 2)}</b></td></tr></table>")
    fig = _img(figures.suitability_figure(s), "dataset suitability") if len(singles) >= 1 else ""
    return f"{fig}{table}<p>{html.escape(s.verdict())}</p>"


def _fmt(value: float, digits: int = 4) -> str:
    return "n/a" if math.isnan(value) else f"{value:.{digits}f}"


def _read_log(path: Path) -> list[dict[str, Any]]:
    return [record.to_dict() for record in read_training_log(path)]


def _curves_section(workspace: Workspace, dataset: str, info: InferenceInformation) -> str:
    parts = []
    for model in info.considered_models:
        model_dir = workspace.model_dir(dataset, model.configuration, plans_name=model.plans, trainer=model.trainer)
        logs = {}
        pngs = []
        for fold in info.folds:
            fold_dir = model_dir / fold_dir_name(fold)
            if (fold_dir / TRAINING_LOG).is_file():
                logs[fold] = _read_log(fold_dir / TRAINING_LOG)
            elif (fold_dir / PROGRESS_PNG).is_file():
                pngs.append(_img((fold_dir / PROGRESS_PNG).read_bytes(), f"{model.identifier} fold {fold}"))
        parts.append(f"<h3>{html.escape(model.configuration)}</h3>")
        if logs:
            parts.append(_img(figures.training_curves(logs, title=model.configuration), f"{model.identifier} curves"))
        parts.extend(pngs)
        if not logs and not pngs:
            parts.append("<p>No training logs found.</p>")
    return "".join(parts)


def _raw_images(workspace: Workspace, dataset: str) -> Mapping[str, Any]:
    try:
        from autounet.dataset import open_raw_dataset

        return open_raw_dataset(dataset, workspace).cases
    except Exception as exc:  # noqa: BLE001 - images are optional decoration of the overlays
        log.warning("Raw images of %s unavailable (%s); overlays are drawn without them.", dataset, exc)
        return {}


def _overlay_section(workspace: Workspace, dataset: str, info: InferenceInformation, ending: str,
                     n_cases: int) -> str:
    source = Path(info.source_folder)
    post = source / POSTPROCESSED_DIR
    folder = post if (post / SUMMARY_JSON).is_file() else source
    summary = load_summary(folder / SUMMARY_JSON)
    scores = case_scores(summary)
    best, worst = best_and_worst(scores, n_cases)
    raw = _raw_images(workspace, dataset)
    parts = [f"<p>Predictions from <code>{html.escape(str(folder))}</code>; slice with the most reference "
             "foreground; colours are labels.</p>"]
    for title, cases in (("Best cases", best), ("Worst cases", worst)):
        parts.append(f"<h3>{title}</h3><div class='row'>")
        for case in cases:
            ref, _ = read_label_map(workspace.gt_segmentations(dataset) / f"{case}{ending}")
            pred, _ = read_label_map(folder / f"{case}{ending}")
            image = _image(raw.get(case))
            png = figures.case_overlay(image, ref, pred, title=f"{case}: mean Dice {scores[case]:.3f}")
            parts.append(_img(png, f"{case} overlay"))
        parts.append("</div>")
    return "".join(parts)


def _image(case_files: Any) -> np.ndarray | None:
    if case_files is None or not getattr(case_files, "images", None):
        return None
    from autounet.io import read_images

    try:
        images, _ = read_images([case_files.images[0]])
    except Exception as exc:  # noqa: BLE001
        log.warning("Cannot read %s for an overlay: %s", case_files.images[0], exc)
        return None
    if images.shape[0] in (3, 4) and images.shape[1] == 1:  # one natural-image file: R, G, B(, A) -> colour
        return np.moveaxis(images[:3], 0, -1)  # (1, H, W, 3)
    return images[0]


_CSS = """
body { font-family: sans-serif; margin: 24px; color: #222; max-width: 1400px; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: 13px; }
th, td { border: 1px solid #bbb; padding: 4px 8px; text-align: center; }
td:first-child { text-align: left; }
tr.best { background: #e5f5e0; font-weight: bold; }
img { max-width: 100%; margin: 4px; border: 1px solid #ddd; }
.row img { max-width: 48%; }
code { background: #f4f4f4; padding: 1px 4px; }
"""


def render(workspace: Workspace, dataset: str, info: InferenceInformation, *, n_cases: int = 2) -> str:
    """The report's HTML text."""
    spec_file = Path(info.source_folder) / DATASET_JSON
    spec = load_dataset_spec(spec_file) if spec_file.is_file() else None
    ending = segmentation_ending(spec.file_ending) if spec is not None else ".nii.gz"
    names = _label_names(spec.labels) if spec is not None else {}
    entries = _entries(workspace, dataset, info, ending)
    tol = f"{info.nsd_tolerance_mm:g} mm" if info.nsd_tolerance_mm is not None else "n/a"
    members = ", ".join(m.configuration for m in info.selected_models)
    head = (f"<h1>Validation report: {html.escape(dataset)}</h1>"
            f"<p>Chosen: <b>{html.escape(_short(info.best))}</b> ({html.escape(members)}); mean foreground Dice on "
            f"the {len(info.folds)}-fold cross-validation {info.result_on_crossval_pre_pp:.4f}, after "
            f"post-processing {info.result_on_crossval_post_pp:.4f}. NSD tolerance {tol}.</p>")
    body = [
        head,
        "<h2>Cross-validation (mean ± SD over folds)</h2>",
        "<p>Per fold: mean over that fold's cases (cases where a metric is undefined are left out); "
        "pooled fg Dice: over all cases at once (the selection score).</p>",
        cv_table(entries, best=info.best, names=names),
        "<h2>Dataset suitability</h2>",
        "<p>Trained configurations as methods: SD of the per-fold foreground Dice within each method, SD of the "
        "method means between methods, and their ratio.</p>",
        _suitability_section(entries),
        "<h2>Training curves</h2>",
        _curves_section(workspace, dataset, info),
        "<h2>Best and worst cases of the chosen model</h2>",
        _overlay_section(workspace, dataset, info, ending, n_cases),
    ]
    return (f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>autounet report {html.escape(dataset)}"
            f"</title><style>{_CSS}</style></head><body>{''.join(body)}</body></html>\n")


def build_report(workspace: Workspace, dataset: str, *, output: str | os.PathLike[str] | None = None,
                 n_cases: int = 2) -> Path:
    """Write the HTML report of ``dataset`` (default ``results/<dataset>/report/index.html``); returns its path.

    Raises:
        DatasetError: ``find_best`` has not been run for the dataset (no ``inference_information.json``).
    """
    info_file = workspace.results_dataset(dataset) / INFERENCE_INFORMATION_JSON
    if not info_file.is_file():
        msg = f"No model selection for {dataset} ({info_file} is missing). Run `autounet find-best` first."
        raise DatasetError(msg)
    info = load_inference_information(info_file)
    path = Path(output) if output is not None else workspace.results_dataset(dataset) / REPORT_DIR / REPORT_HTML
    write_bytes_atomic(path, render(workspace, dataset, info, n_cases=n_cases).encode("utf-8"))
    return path
