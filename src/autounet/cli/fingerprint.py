"""``autounet fingerprint DATASET``: extract (or reuse) the dataset fingerprint."""

from __future__ import annotations

import argparse
import os
from typing import Any

from autounet.cli import _options

NAME = "fingerprint"
HELP = "extract the dataset fingerprint (spacings, cropped shapes, foreground intensities)"


def default_workers() -> int:
    """Worker processes by default: the reference's 8, at most the CPU count."""
    return max(1, min(8, os.cpu_count() or 1))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``autounet fingerprint``."""
    _options.dataset(parser)
    parser.add_argument("--clean", action="store_true", help="recompute even if an up-to-date fingerprint exists")
    parser.add_argument("-j", "--workers", type=int, default=None,
                        help=f"worker processes (default {default_workers()})")
    _options.json_switch(parser, help="print the fingerprint file's content as JSON")


def run(args: argparse.Namespace, ctx: Any) -> int:
    """Extract or reuse the fingerprint, then print a summary (or the JSON)."""
    import json

    import numpy as np

    from autounet.dataset import open_raw_dataset
    from autounet.fingerprint import ensure_fingerprint

    workspace = ctx.workspace()
    raw = open_raw_dataset(args.dataset, workspace)
    path = workspace.fingerprint_file(raw.name)
    fp = ensure_fingerprint(raw, path, clean=args.clean, workers=args.workers or default_workers(),
                            progress=ctx.progress)
    if args.json:
        print(json.dumps(fp.to_dict(), indent=2))
        return 0
    print(f"Fingerprint: {path}")
    print(f"  cases: {fp.num_cases}, channels: {fp.num_channels}")
    print(f"  median spacing: {[round(float(v), 6) for v in np.median(fp.spacings, 0)]}")
    print(f"  median shape after crop: {[float(v) for v in np.median(fp.shapes_after_crop, 0)]}")
    print(f"  median relative size after cropping: {fp.median_relative_size_after_cropping:.4g}")
    for i, p in enumerate(fp.foreground_intensity_properties_per_channel):
        print(f"  channel {i} foreground: mean {p.mean:.6g}, std {p.std:.6g}, median {p.median:.6g}, "
              f"[0.5%, 99.5%] = [{p.percentile_00_5:.6g}, {p.percentile_99_5:.6g}], "
              f"[min, max] = [{p.min:.6g}, {p.max:.6g}]")
    return 0
