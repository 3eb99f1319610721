"""``autounet augment-preview DATASET CONFIG -o FILE.png``: a PNG grid of augmented training patches."""

from __future__ import annotations

import argparse
from typing import Any

from autounet.cli import _options

NAME = "augment-preview"
HELP = "write a PNG of augmented training patches with their labels (what the network is trained on)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``autounet augment-preview``."""
    _options.dataset(parser)
    _options.configuration(parser, positional=True)
    parser.add_argument("-o", "--output", required=True, metavar="FILE.png", help="PNG file to write")
    _options.plans(parser)
    parser.add_argument("--augmentation", default="default", metavar="PRESET|FILE",
                        help="augmentation preset (default, light, none) or JSON file (default: default)")
    parser.add_argument("-n", "--samples", type=int, default=8, metavar="N", help="patches to show (default 8)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the patch choice and the augmentation")


def run(args: argparse.Namespace, ctx: Any) -> int:
    """Read N training patches from the preprocessed store, augment them and draw them."""
    import torch

    from autounet.augmentation import build
    from autounet.augmentation.preview import preview_rows, save_preview
    from autounet.errors import UsageError
    from autounet.preprocessing import CaseStore
    from autounet.training.build import load_inputs
    from autounet.training.data import BatchLoader

    if args.samples < 1:
        raise UsageError(f"-n/--samples must be at least 1, got {args.samples}.")
    workspace = ctx.workspace()
    dataset = workspace.find_dataset(args.dataset)
    inputs = load_inputs(workspace, dataset, args.configuration, args.plans)
    plan, labels = inputs.plan, inputs.labels
    aug = build(args.augmentation, patch_size=plan.patch_size,
                use_mask_for_norm=[bool(c.params.get("use_mask_for_norm", False)) for c in plan.normalization],
                regions=labels.regions if labels.has_regions else None,
                ignore_label=labels.ignore_label if labels.has_regions else None)
    store = CaseStore(inputs.data_folder)
    loader = BatchLoader(store, store.case_ids(), batch_size=args.samples, patch_size=aug.initial_patch_size,
                         final_patch_size=plan.patch_size, oversample=0.5, seed=args.seed, workers=0,
                         has_ignore=labels.ignore_label is not None)
    try:
        batch = loader.read(0, 0)
    finally:
        loader.close()
    rows = preview_rows(aug, torch.from_numpy(batch.data), torch.from_numpy(batch.seg[:, :1]),
                        generator=torch.Generator().manual_seed(args.seed))
    path = save_preview(rows, args.output, title=f"{dataset} {plan.name}, augmentation {aug.config.name}",
                        names=list(batch.keys))
    print(path)
    return 0
