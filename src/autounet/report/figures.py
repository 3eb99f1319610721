"""Matplotlib figures of the validation report, rendered off-screen (Agg) to PNG bytes."""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from autounet.report.stats import Suitability

_LABEL_COLORS = np.array([[0, 0, 0], [230, 25, 75], [60, 180, 75], [0, 130, 200], [245, 130, 48], [145, 30, 180],
                          [70, 240, 240], [240, 50, 230], [210, 245, 60], [250, 190, 212]], dtype=np.float32) / 255


def _figure(*, figsize: tuple[float, float], ncols: int = 1, nrows: int = 1) -> tuple[Any, Any]:
    import matplotlib

    matplotlib.use("Agg", force=False)
    from matplotlib.figure import Figure

    fig = Figure(figsize=figsize, dpi=100)
    axes = fig.subplots(nrows, ncols, squeeze=False)
    return fig, axes


def _png(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def training_curves(logs: Mapping[int, Sequence[Mapping[str, Any]]], *, title: str) -> bytes:
    """Losses (train solid, validation dashed) and pseudo-Dice (EMA) per fold, from JSON-lines training logs."""
    fig, axes = _figure(figsize=(10, 3.4), ncols=2)
    ax_loss, ax_dice = axes[0]
    for i, (fold, records) in enumerate(sorted(logs.items())):
        color = f"C{i % 10}"
        epochs = [r.get("epoch", j) for j, r in enumerate(records)]
        ax_loss.plot(epochs, [r.get("train_losses", math.nan) for r in records], color=color, label=f"fold {fold}")
        ax_loss.plot(epochs, [r.get("val_losses", math.nan) for r in records], color=color, linestyle="--")
        ax_dice.plot(epochs, [r.get("ema_fg_dice", math.nan) for r in records], color=color, label=f"fold {fold}")
    ax_loss.set(xlabel="epoch", ylabel="loss", title=f"{title}: loss (train —, validation --)")
    ax_dice.set(xlabel="epoch", ylabel="pseudo Dice (EMA)", title=f"{title}: pseudo Dice")
    ax_dice.legend(fontsize=8, loc="lower right")
    return _png(fig)


def suitability_figure(s: Suitability, *, metric: str = "Dice") -> bytes:
    """Per-fold scores of each method (mean ± SD) and the within/between SDs with their ratio."""
    fig, axes = _figure(figsize=(11, 3.8), ncols=2)
    ax_scores, ax_sd = axes[0]
    names = list(s.methods)
    for i, m in enumerate(names):
        values = [v for v in s.fold_scores[m].values() if not math.isnan(v)]
        ax_scores.scatter([i] * len(values), values, color="C0", alpha=0.7, s=18)
        if values:
            sd = float(np.std(values, ddof=1)) if len(values) > 1 else 0.0
            ax_scores.errorbar([i + 0.15], [float(np.mean(values))], yerr=[sd], fmt="o", color="C3", capsize=4)
    ax_scores.set_xticks(range(len(names)), [_short(n) for n in names], rotation=15, fontsize=8)
    ax_scores.set(ylabel=f"fold mean foreground {metric}", title="per-fold scores (dots), mean ± SD (red)")
    bars = [s.sd_within[m] for m in names] + [s.pooled_sd_within, s.sd_between]
    labels = [f"within\n{_short(m)}" for m in names] + ["within\n(pooled)", "between\nmethods"]
    colors = ["C0"] * len(names) + ["C1", "C3"]
    ax_sd.bar(range(len(bars)), [0 if math.isnan(b) else b for b in bars], color=colors)
    ax_sd.set_xticks(range(len(bars)), labels, fontsize=7)
    ratio = "n/a" if math.isnan(s.ratio) else f"{s.ratio:.2f}"
    ax_sd.set(ylabel=f"SD of {metric}", title=f"SD between / SD within = {ratio}")
    return _png(fig)


def _short(name: str) -> str:
    """``nnUNetTrainer__nnUNetPlans__3d_fullres`` -> ``3d_fullres``."""
    return name.split("__")[-1] if "__" in name else name


def _normalize(image: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(image, (0.5, 99.5)) if image.size else (0.0, 1.0)
    if hi <= lo:
        hi = lo + 1.0
    return np.clip((image - lo) / (hi - lo), 0.0, 1.0)


def _overlay(gray: np.ndarray, seg: np.ndarray, alpha: float = 0.45) -> np.ndarray:
    rgb = gray if gray.ndim == 3 else np.repeat(gray[..., None], 3, axis=-1)
    colors = _LABEL_COLORS[np.mod(seg.astype(np.int64), len(_LABEL_COLORS))]
    mask = (seg > 0)[..., None]
    return np.where(mask, (1 - alpha) * rgb + alpha * colors, rgb)


def best_slice(reference: np.ndarray, prediction: np.ndarray) -> int:
    """Index along axis 0 with the most reference foreground (else the most predicted; else the middle)."""
    for seg in (reference, prediction):
        counts = (seg > 0).reshape(seg.shape[0], -1).sum(1)
        if counts.any():
            return int(counts.argmax())
    return reference.shape[0] // 2


def case_overlay(image: np.ndarray | None, reference: np.ndarray, prediction: np.ndarray, *, title: str) -> bytes:
    """Reference and prediction over the image, on the slice with the most reference foreground.

    ``image`` is ``(z, y, x)`` (grey) or ``(z, y, x, 3)`` (colour, e.g. an RGB photograph).
    """
    z = best_slice(reference, prediction)
    if image is None:
        gray = np.zeros(reference.shape[1:], np.float32)
    elif image.ndim == 4:
        gray = image[z].astype(np.float32) / (255.0 if float(image.max()) > 1.0 else 1.0)
    else:
        gray = _normalize(image[z].astype(np.float32))
    fig, axes = _figure(figsize=(6.4, 3.4), ncols=2)
    for ax, seg, name in ((axes[0][0], reference, "reference"), (axes[0][1], prediction, "prediction")):
        ax.imshow(_overlay(gray, seg[z]), interpolation="nearest")
        ax.set_title(f"{name} (slice {z})", fontsize=9)
        ax.axis("off")
    fig.suptitle(title, fontsize=10)
    return _png(fig)
