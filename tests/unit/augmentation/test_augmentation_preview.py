"""The preview grid: rows describe each sample; the PNG is written atomically and is a valid image."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from PIL import Image

from autounet.augmentation import build
from autounet.augmentation.preview import preview_rows, save_preview


def test_preview_rows_and_png(tmp_path: Path, rng: np.random.Generator) -> None:
    aug = build("default", patch_size=(8, 24, 20), deep_supervision_strides=[[1, 1, 1], [2, 2, 2], [2, 2, 2]])
    shape = aug.initial_patch_size
    img = torch.from_numpy(rng.normal(size=(3, 1, *shape)).astype(np.float32))
    seg = torch.zeros(3, 1, *shape, dtype=torch.int16)
    seg[:, :, :, 10:30, 10:25] = 1
    rows = preview_rows(aug, img, seg, generator=torch.Generator().manual_seed(0))
    assert len(rows) == 3
    for row in rows:
        assert row.original.shape == (24, 20) and row.augmented.shape == (24, 20)
        assert set(np.unique(row.augmented_labels)) <= {0, 1}
        assert all(name in {"rotation", "scaling", "noise", "blur", "brightness", "contrast", "lowres",
                            "gamma_inverted", "gamma", "mirror"} for name in row.applied)
    out = save_preview(rows, tmp_path / "preview.png", title="test")
    with Image.open(out) as im:
        assert im.format == "PNG" and im.size == (600, 3 * 300 + 60)
    assert [p.name for p in tmp_path.iterdir()] == ["preview.png"]  # no temporary file left


def test_preview_of_region_targets(rng: np.random.Generator) -> None:
    aug = build("none", patch_size=(16, 16), regions=[(1, 2), (2,)])
    seg = torch.zeros(1, 1, 16, 16, dtype=torch.int16)
    seg[0, 0, 4:12, 4:12] = 1
    seg[0, 0, 6:10, 6:10] = 2
    rows = preview_rows(aug, torch.zeros(1, 1, 16, 16), seg, generator=torch.Generator())
    assert rows[0].augmented_labels[8, 8] == 2 and rows[0].augmented_labels[5, 5] == 1
    assert rows[0].augmented_labels[0, 0] == 0 and rows[0].applied == ()
