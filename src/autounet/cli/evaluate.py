"""``autounet evaluate PRED REF``: Dice, IoU, counts, NSD and HD95 per case and label; ``summary.json`` + CSV.

Also holds the small argument helpers that the other validation commands (postprocess, find-best, report) share:
label parsing, the dataset's label semantics and the default number of worker processes.
"""

from __future__ import annotations

import argparse
import math
import os
from typing import Any

from autounet.cli import _options
from autounet.workspace import DATASET_JSON

NAME = "evaluate"
HELP = "evaluate predicted segmentations against references (Dice, IoU, NSD, HD95; summary.json + CSV)"


def default_workers() -> int:
    """Worker processes when ``-j`` is not given: the CPU count, at most 8."""
    return max(1, min(8, os.cpu_count() or 1))


def parse_label(text: str) -> int | tuple[int, ...]:
    """``"1"`` -> 1; ``"1,2"``, ``"(1, 2)"`` or ``"1+2"`` -> the region ``(1, 2)``."""
    from autounet.errors import UsageError

    cleaned = text.strip().strip("()[]").replace("+", ",")
    try:
        values = [int(v) for v in cleaned.split(",") if v.strip()]
    except ValueError as exc:
        raise UsageError(f"Invalid label {text!r}: use an integer (1) or a region (1,2).") from exc
    if not values:
        raise UsageError(f"Invalid label {text!r}: use an integer (1) or a region (1,2).")
    return values[0] if len(values) == 1 and "," not in text and "+" not in text else tuple(values)


def add_label_arguments(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    """``-l LABELS...`` or ``-d DATASET`` (mutually exclusive), ``--ignore-label``, ``--file-ending``."""
    group = parser.add_mutually_exclusive_group(required=required)
    group.add_argument("-l", "--labels", nargs="+", metavar="LABEL",
                       help="labels (1 2) and/or regions (1,2) to evaluate")
    group.add_argument("-d", "--dataset", help="take labels, regions, ignore label and file ending from this "
                       "dataset's dataset.json (id or name, in the workspace)")
    parser.add_argument("--ignore-label", type=int, default=None, help="reference label excluded from all counts")
    parser.add_argument("--file-ending", default=None, help="segmentation file ending (default: inferred)")


def dataset_labels(ctx: Any, dataset: str) -> tuple[Any, str]:
    """``(LabelSpec, file_ending)`` of a workspace dataset (preprocessed copy of dataset.json, else the raw one)."""
    from autounet.errors import DatasetError
    from autounet.labels import LabelSpec
    from autounet.schemas.dataset import load_dataset_spec

    workspace = ctx.workspace()
    name = workspace.find_dataset(dataset)
    for path in (workspace.preprocessed_dataset_json(name), workspace.raw_dataset(name) / DATASET_JSON):
        if path.is_file():
            spec = load_dataset_spec(path)
            return LabelSpec.from_dataset_spec(spec), spec.file_ending
    raise DatasetError(f"No dataset.json for {name} in {workspace.preprocessed} or {workspace.raw}.")


def resolve_label_args(args: argparse.Namespace, ctx: Any) -> tuple[Any, str | None]:
    """Labels (a ``LabelSpec`` or a list) and the file ending from ``-l``/``-d``/``--file-ending``."""
    if getattr(args, "dataset", None):
        labels, ending = dataset_labels(ctx, args.dataset)
        return labels, args.file_ending or ending
    return [parse_label(v) for v in args.labels], args.file_ending


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``autounet evaluate``."""
    parser.add_argument("pred", metavar="PRED", help="folder of predicted segmentations")
    parser.add_argument("ref", metavar="REF", help="folder of reference segmentations (same file names)")
    add_label_arguments(parser)
    surface = parser.add_mutually_exclusive_group()
    surface.add_argument("--nsd-tolerance", type=float, default=None, metavar="MM",
                         help="NSD tolerance in mm (default 2.0)")
    surface.add_argument("--no-surface", action="store_true", help="skip NSD and HD95 (overlap metrics only)")
    parser.add_argument("-o", "--output", metavar="SUMMARY.json", default=None,
                        help="summary file (default PRED/summary.json); the per-case CSV goes beside it")
    parser.add_argument("--strict", action="store_true", help="require a prediction for every reference")
    _options.workers(parser, default=None)
    _options.json_switch(parser, help="print the means as JSON")


def format_summary(summary: Any) -> str:
    """A table of the mean metrics per label and the foreground mean (NaN cases counted)."""
    metrics = [m for m in ("Dice", "IoU", "NSD", "HD95") if m in summary.foreground_mean]
    head = f"{'label':<14}" + "".join(f"{m:>10}" for m in metrics) + f"{'NaN cases':>12}"
    lines = [head, "-" * len(head)]
    for key in summary.labels:
        nans = summary.nan_cases.get(key, {})
        nan_text = "/".join(str(nans.get(m, 0)) for m in metrics)
        lines.append(f"{key:<14}" + "".join(f"{_num(summary.mean[key][m]):>10}" for m in metrics)
                     + f"{nan_text:>12}")
    lines.append(f"{'foreground':<14}" + "".join(f"{_num(summary.foreground_mean[m]):>10}" for m in metrics))
    tol = f", NSD tolerance {summary.nsd_tolerance_mm:g} mm" if summary.nsd_tolerance_mm is not None else ""
    lines.append(f"{len(summary.metric_per_case)} cases{tol}; NaN cases per metric ({'/'.join(metrics)}) are "
                 "left out of the means.")
    return "\n".join(lines)


def _num(value: float) -> str:
    return "NaN" if math.isnan(value) else f"{value:.4f}"


def run(args: argparse.Namespace, ctx: Any) -> int:
    """Evaluate, write the summary and CSV, print the table."""
    import json
    from pathlib import Path

    from autounet.evaluation import DEFAULT_NSD_TOLERANCE_MM, evaluate, per_case_csv_path
    from autounet.workspace import SUMMARY_JSON

    labels, ending = resolve_label_args(args, ctx)
    tolerance = None if args.no_surface else (args.nsd_tolerance if args.nsd_tolerance is not None
                                              else DEFAULT_NSD_TOLERANCE_MM)
    output = Path(args.output) if args.output else Path(args.pred) / SUMMARY_JSON
    summary = evaluate(args.pred, args.ref, labels=labels, file_ending=ending, nsd_tolerance_mm=tolerance,
                       ignore_label=args.ignore_label, workers=args.workers or default_workers(),
                       progress=ctx.progress, output=output, strict=args.strict)
    if args.json:
        print(json.dumps({"summary": str(output), "foreground_mean": summary.foreground_mean, "mean": summary.mean,
                          "nan_cases": summary.nan_cases}, allow_nan=True))
    else:
        print(format_summary(summary))
        print(f"-> {output} and {per_case_csv_path(output)}")
    return 0
