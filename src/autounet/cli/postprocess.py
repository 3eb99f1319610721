"""``autounet postprocess``: apply a connected-component decision to a folder, or determine one.

- apply: ``autounet postprocess -i IN -o OUT --decision postprocessing.json``
- determine: ``autounet postprocess -i CV_PREDICTIONS --determine REF (-l LABELS... | -d DATASET)`` writes
  ``CV_PREDICTIONS/postprocessing.json`` and ``CV_PREDICTIONS/postprocessed/``.
"""

from __future__ import annotations

import argparse
from typing import Any

from autounet.cli import _options
from autounet.cli.evaluate import (
    add_label_arguments,
    default_workers,
    resolve_label_args,
)

NAME = "postprocess"
HELP = "apply (or --determine) the keep-largest-component post-processing"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``autounet postprocess``."""
    parser.add_argument("-i", "--input", required=True, metavar="DIR", help="folder of segmentations")
    parser.add_argument("-o", "--output", metavar="DIR", help="output folder (apply; may equal the input)")
    parser.add_argument("--decision", metavar="FILE", help="postprocessing.json to apply")
    parser.add_argument("--determine", metavar="REF",
                        help="determine the decision on these cross-validation predictions against REF instead")
    add_label_arguments(parser, required=False)
    parser.add_argument("--nsd-tolerance", type=float, default=None, metavar="MM",
                        help="NSD tolerance of the post-processed summary (default 2.0)")
    _options.workers(parser, default=None)


def run(args: argparse.Namespace, ctx: Any) -> int:
    """Apply or determine, then print a one-line result."""
    from autounet.errors import UsageError
    from autounet.evaluation import DEFAULT_NSD_TOLERANCE_MM
    from autounet.postprocessing import apply, determine

    workers = args.workers or default_workers()
    if args.determine:
        if not (args.labels or args.dataset):
            raise UsageError("--determine needs the labels: -l LABELS... or -d DATASET.")
        labels, ending = resolve_label_args(args, ctx)
        tolerance = args.nsd_tolerance if args.nsd_tolerance is not None else DEFAULT_NSD_TOLERANCE_MM
        decision = determine(args.input, args.determine, labels=labels, file_ending=ending,
                             ignore_label=args.ignore_label, workers=workers, progress=ctx.progress,
                             nsd_tolerance_mm=tolerance)
        for trial in decision.trials:
            what = ", ".join(str(v) for v in trial.step.labels_or_regions)
            verdict = "kept" if trial.accepted else "rejected"
            print(f"keep largest component of [{what}]: {verdict} "
                  f"(foreground Dice {trial.before.foreground_dice:.5f} -> {trial.after.foreground_dice:.5f})")
        print(f"-> {args.input}/postprocessing.json, {args.input}/postprocessed/")
        return 0
    if not (args.output and args.decision):
        raise UsageError("Give -o OUT and --decision postprocessing.json (or --determine REF to make a decision).")
    written = apply(args.input, args.output, args.decision, file_ending=args.file_ending, workers=workers,
                    progress=ctx.progress)
    print(f"{len(written)} segmentations post-processed -> {args.output}")
    return 0
