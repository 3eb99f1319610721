"""A PNG grid of augmented training patches with their labels, to see what the network is trained on.

Each row is one sample: the loaded patch (centre region, before augmentation) and the augmented patch, both with
the label map overlaid; 3D patches show their middle slice along the first axis. Both panels of a row share the
intensity window of the original, so brightness, contrast and gamma changes stay visible. The row title lists the
transforms applied to that sample.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from autounet._atomic import atomic_path
from autounet.augmentation.pipeline import AugmentationParams, Augmenter
from autounet.augmentation.spatial import centre_crop


@dataclass(frozen=True)
class PreviewRow:
    """One sample: 2D views of the original and the augmented patch with their labels and the applied transforms."""

    original: np.ndarray
    original_labels: np.ndarray
    augmented: np.ndarray
    augmented_labels: np.ndarray
    applied: tuple[str, ...]


def _view(x: torch.Tensor) -> np.ndarray:
    """``(C, *spatial)`` -> 2D view of channel 0 (middle slice of axis 0 for 3D)."""
    arr = x[0].detach().cpu().float().numpy()
    return arr[arr.shape[0] // 2] if arr.ndim == 3 else arr


def preview_rows(augmenter: Augmenter, image: torch.Tensor, seg: torch.Tensor, *,
                 generator: torch.Generator) -> list[PreviewRow]:
    """Augment ``image (B, C, *initial)``/``seg (B, S, *initial)`` once and describe every sample."""
    params: AugmentationParams = augmenter.make_params(image.shape[0], channels=image.shape[1], generator=generator)
    out = augmenter.apply(image, seg, params)
    target = out.target[0] if isinstance(out.target, list) else out.target
    if target.dtype == torch.bool:  # regions: show the index of the innermost region a voxel belongs to
        weights = torch.arange(1, target.shape[1] + 1, device=target.device).view(1, -1, *([1] * (target.ndim - 2)))
        target = (target.long() * weights).amax(dim=1, keepdim=True)
    crop = centre_crop(image, augmenter.patch_size, pad_value=0.0)
    crop_seg = centre_crop(seg[:, :1], augmenter.patch_size, pad_value=-1)
    applied = {k: v.tolist() for k, v in params.applied().items()}
    rows = []
    for b in range(image.shape[0]):
        names = tuple(k for k, v in applied.items() if v[b])
        rows.append(PreviewRow(original=_view(crop[b]), original_labels=_view(crop_seg[b]),
                               augmented=_view(out.image[b]), augmented_labels=_view(target[b]), applied=names))
    return rows


def _overlay(ax: object, image: np.ndarray, labels: np.ndarray, window: tuple[float, float], n_labels: int) -> None:
    ax.imshow(image, cmap="gray", vmin=window[0], vmax=window[1], interpolation="nearest")  # type: ignore[attr-defined]
    shown = np.ma.masked_where(labels <= 0, labels)
    ax.imshow(shown, cmap="tab10", vmin=0, vmax=max(n_labels, 9), alpha=0.45,  # type: ignore[attr-defined]
              interpolation="nearest")
    ax.set_xticks([])  # type: ignore[attr-defined]
    ax.set_yticks([])  # type: ignore[attr-defined]


def save_preview(rows: list[PreviewRow], path: str | os.PathLike[str], *, title: str = "",
                 names: list[str] | None = None) -> Path:
    """Draw ``rows`` as a grid (original | augmented) and write the PNG atomically; returns the path.

    ``names`` (one per row, e.g. the case ids) label the left panels.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    path = Path(path)
    n = len(rows)
    n_labels = int(max([1] + [int(r.original_labels.max()) for r in rows] + [int(r.augmented_labels.max())
                                                                              for r in rows]))
    fig = Figure(figsize=(6.0, 3.0 * n + (0.6 if title else 0.0)), dpi=100)
    FigureCanvasAgg(fig)
    axes = fig.subplots(n, 2, squeeze=False)
    for i, row in enumerate(rows):
        lo, hi = np.percentile(row.original, [1, 99]) if row.original.size else (0.0, 1.0)
        window = (float(lo), float(hi) if hi > lo else float(lo) + 1.0)
        _overlay(axes[i][0], row.original, row.original_labels, window, n_labels)
        _overlay(axes[i][1], row.augmented, row.augmented_labels, window, n_labels)
        name = names[i] if names is not None and i < len(names) else f"sample {i}"
        axes[i][0].set_title(f"{name}: loaded (centre)", fontsize=8)
        axes[i][1].set_title(", ".join(row.applied) or "no transform", fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, format="png")
    return path
