"""Per-case segmentation metrics: overlap counts, Dice, IoU, normalized surface Dice (NSD) and HD95.

Overlap metrics follow the reference exactly (§8): for a label (or a region, the union of several labels) the
voxel counts ``TP FP FN TN`` over the valid voxels (reference voxels equal to the ignore label are excluded),
``Dice = 2TP / (2TP + FP + FN)`` and ``IoU = TP / (TP + FP + FN)``, both NaN when reference and prediction are
empty. All labels of a case are counted in one pass: a joint histogram (confusion matrix) of the reference and
predicted label indices, from which every label's and region's counts are sums of blocks.

Surface metrics use the true voxel spacing (mm):

- the surface of a mask is its voxels that have at least one face neighbour outside the mask (outside the image
  counts as outside the mask); axes of length 1 are dropped first, so 2D images stored as ``(1, H, W)`` get 2D
  surfaces;
- the directed distances are, for each surface voxel of one mask, the Euclidean distance (mm) to the nearest
  surface voxel of the other, from ``scipy.ndimage.distance_transform_edt(..., sampling=spacing)``;
- ``NSD(τ) = (#{p ∈ ∂P: d(p, ∂R) ≤ τ} + #{r ∈ ∂R: d(r, ∂P) ≤ τ}) / (|∂P| + |∂R|)``;
- ``HD95 = max(P95(d(∂P → ∂R)), P95(d(∂R → ∂P)))`` (numpy's linear-interpolated percentile);
- both empty: NSD and HD95 are NaN; exactly one empty: NSD is 0 and HD95 is NaN (undefined; the summaries
  report how many cases are NaN).

The distance transforms run on the bounding box of the union of both masks plus a one-voxel margin, which gives
the same distances as the full grid (every surface voxel lies inside that box) at a fraction of the cost.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import ndimage

from autounet.errors import UsageError
from autounet.schemas.results import LabelMetrics, LabelOrRegion, label_key

#: Voxels per chunk of the joint histogram (bounds the temporary int64 array to 128 MiB).
_CHUNK_VOXELS = 1 << 24


# ---- label indices and the confusion matrix --------------------------------------------------------------------
def label_classes(labels_or_regions: Sequence[LabelOrRegion]) -> tuple[int, ...]:
    """Every label that appears in ``labels_or_regions`` (sorted, unique)."""
    out: set[int] = set()
    for item in labels_or_regions:
        out.update(int(v) for v in (item if isinstance(item, (tuple, list)) else (item,)))
    return tuple(sorted(out))


def class_index(seg: np.ndarray, classes: Sequence[int]) -> np.ndarray:
    """Map label values to ``1 + position in classes``; any other value maps to 0. Returns uint8 or uint16."""
    classes_arr = np.asarray(classes, dtype=np.int64)
    out_dtype = np.uint8 if len(classes_arr) < 255 else np.uint16
    if seg.dtype.kind == "f":
        seg = np.rint(seg).astype(np.int64)
    elif seg.dtype.kind == "b":
        seg = seg.view(np.uint8)
    if seg.size and seg.dtype.kind in "ui":
        lo, hi = int(seg.min()), int(seg.max())
        if lo >= 0 and hi < (1 << 20):
            lut = np.zeros(max(hi, int(classes_arr.max(initial=0))) + 1, dtype=out_dtype)
            lut[classes_arr] = np.arange(1, len(classes_arr) + 1, dtype=out_dtype)
            return lut[seg]
    pos = np.clip(np.searchsorted(classes_arr, seg), 0, max(len(classes_arr) - 1, 0))
    hit = classes_arr[pos] == seg if len(classes_arr) else np.zeros(seg.shape, bool)
    return np.where(hit, pos + 1, 0).astype(out_dtype)


def confusion_matrix(ref_idx: np.ndarray, pred_idx: np.ndarray, n_classes: int, *,
                     valid: np.ndarray | None = None) -> np.ndarray:
    """Joint histogram ``C[i, j]`` of reference index ``i`` and predicted index ``j`` over the valid voxels.

    ``n_classes`` counts the "other" index 0, so ``C`` is ``(n_classes, n_classes)`` int64.
    """
    k = n_classes
    total = np.zeros(k * k, dtype=np.int64)
    flat_r, flat_p = ref_idx.reshape(-1), pred_idx.reshape(-1)
    flat_v = None if valid is None else valid.reshape(-1)
    for start in range(0, flat_r.size, _CHUNK_VOXELS):
        stop = start + _CHUNK_VOXELS
        joint = flat_r[start:stop].astype(np.int64) * k + flat_p[start:stop]
        if flat_v is not None:
            joint = joint[flat_v[start:stop]]
        total += np.bincount(joint, minlength=k * k)
    return total.reshape(k, k)


def overlap_counts(cm: np.ndarray, members: Sequence[int]) -> tuple[int, int, int, int]:
    """``(TP, FP, FN, TN)`` of the union of class indices ``members`` (1-based) from a confusion matrix."""
    sel = np.asarray(members, dtype=np.intp)
    tp = int(cm[np.ix_(sel, sel)].sum())
    n_ref = int(cm[sel, :].sum())
    n_pred = int(cm[:, sel].sum())
    fp, fn = n_pred - tp, n_ref - tp
    tn = int(cm.sum()) - tp - fp - fn
    return tp, fp, fn, tn


def dice_iou(tp: int, fp: int, fn: int) -> tuple[float, float]:
    """Dice and IoU with the reference's rule: NaN when ``TP + FP + FN == 0``."""
    denom = tp + fp + fn
    if denom == 0:
        return float("nan"), float("nan")
    return 2.0 * tp / (2.0 * tp + fp + fn), tp / denom


# ---- surfaces and distances ------------------------------------------------------------------------------------
def _squeeze(mask: np.ndarray, spacing: Sequence[float]) -> tuple[np.ndarray, tuple[float, ...]]:
    """Drop axes of length 1 (and their spacing) so 2D images get 2D surfaces."""
    keep = [i for i, s in enumerate(mask.shape) if s > 1] or [mask.ndim - 1]
    return mask.reshape([mask.shape[i] for i in keep]), tuple(float(spacing[i]) for i in keep)


def _bbox(mask: np.ndarray) -> tuple[slice, ...]:
    """Tight bounding box of a non-empty mask."""
    out = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        nz = np.flatnonzero(mask.any(axis=other) if other else mask)
        out.append(slice(int(nz[0]), int(nz[-1]) + 1))
    return tuple(out)


def surface(mask: np.ndarray) -> np.ndarray:
    """Voxels of ``mask`` with a face neighbour outside it; outside the array counts as outside the mask."""
    padded = np.pad(mask, 1)
    core = tuple(slice(1, -1) for _ in range(mask.ndim))
    interior = padded[core].copy()
    for axis in range(mask.ndim):
        for lo, hi in ((0, -2), (2, None)):
            sl = list(core)
            sl[axis] = slice(lo, hi)
            interior &= padded[tuple(sl)]
    return mask & ~interior


def surface_distances(ref_mask: np.ndarray, pred_mask: np.ndarray,
                      spacing: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    """Directed surface distances in mm: ``(pred surface -> ref surface, ref surface -> pred surface)``.

    Both masks must be non-empty. The distance transforms run on the union bounding box plus one voxel.
    """
    ref, sp = _squeeze(np.asarray(ref_mask, dtype=bool), spacing)
    pred, _ = _squeeze(np.asarray(pred_mask, dtype=bool), spacing)
    box = _bbox(ref | pred)
    ref_s = np.pad(surface(ref[box]), 1)
    pred_s = np.pad(surface(pred[box]), 1)
    dist_to_ref = ndimage.distance_transform_edt(~ref_s, sampling=sp)
    dist_to_pred = ndimage.distance_transform_edt(~pred_s, sampling=sp)
    return dist_to_ref[pred_s], dist_to_pred[ref_s]


def nsd_from_distances(pred_to_ref: np.ndarray, ref_to_pred: np.ndarray, tolerance_mm: float) -> float:
    """Normalized surface Dice from directed distances."""
    n = pred_to_ref.size + ref_to_pred.size
    if n == 0:
        return float("nan")
    within = int(np.count_nonzero(pred_to_ref <= tolerance_mm)) + int(np.count_nonzero(ref_to_pred <= tolerance_mm))
    return within / n


def hd95_from_distances(pred_to_ref: np.ndarray, ref_to_pred: np.ndarray) -> float:
    """95th-percentile Hausdorff distance (max of the two directed 95th percentiles)."""
    if pred_to_ref.size == 0 or ref_to_pred.size == 0:
        return float("nan")
    return float(max(np.percentile(pred_to_ref, 95), np.percentile(ref_to_pred, 95)))


def surface_metrics(ref_mask: np.ndarray, pred_mask: np.ndarray, spacing: Sequence[float], *,
                    tolerance_mm: float) -> tuple[float, float]:
    """``(NSD, HD95)`` of two masks with the NaN rules of the module docstring."""
    has_ref, has_pred = bool(ref_mask.any()), bool(pred_mask.any())
    if not has_ref and not has_pred:
        return float("nan"), float("nan")
    if not has_ref or not has_pred:
        return 0.0, float("nan")
    d_pr, d_rp = surface_distances(ref_mask, pred_mask, spacing)
    return nsd_from_distances(d_pr, d_rp, tolerance_mm), hd95_from_distances(d_pr, d_rp)


# ---- one case --------------------------------------------------------------------------------------------------
def _members(item: LabelOrRegion, classes: Sequence[int]) -> list[int]:
    """1-based class indices of a label or region."""
    values = item if isinstance(item, (tuple, list)) else (item,)
    return [classes.index(int(v)) + 1 for v in values]


def case_metrics(reference: np.ndarray, prediction: np.ndarray, labels_or_regions: Sequence[LabelOrRegion], *,
                 spacing: Sequence[float] | None = None, ignore_label: int | None = None,
                 nsd_tolerance_mm: float | None = None) -> dict[str, LabelMetrics]:
    """Metrics of every label/region for one case (integer label maps of equal shape).

    Args:
        reference: reference label map.
        prediction: predicted label map (same shape).
        labels_or_regions: labels (``1``) and/or regions (``(1, 2)``: the union of those labels).
        spacing: voxel spacing in mm per array axis; required for surface metrics.
        ignore_label: reference value whose voxels are excluded from every count (and from the predicted
            masks of the surface metrics).
        nsd_tolerance_mm: NSD tolerance; ``None`` skips NSD and HD95.

    Returns:
        ``{label_key: LabelMetrics}`` in the order of ``labels_or_regions``.
    """
    if reference.shape != prediction.shape:
        msg = f"reference shape {reference.shape} differs from prediction shape {prediction.shape}"
        raise UsageError(msg)
    if nsd_tolerance_mm is not None and spacing is None:
        msg = "surface metrics need the voxel spacing"
        raise UsageError(msg)
    classes = list(label_classes(labels_or_regions))
    ref_idx, pred_idx = class_index(reference, classes), class_index(prediction, classes)
    valid = None if ignore_label is None else np.asarray(reference != ignore_label)
    cm = confusion_matrix(ref_idx, pred_idx, len(classes) + 1, valid=valid)
    out: dict[str, LabelMetrics] = {}
    for item in labels_or_regions:
        members = _members(item, classes)
        tp, fp, fn, tn = overlap_counts(cm, members)
        dice, iou = dice_iou(tp, fp, fn)
        nsd = hd95 = None
        if nsd_tolerance_mm is not None and spacing is not None:
            lut = np.zeros(len(classes) + 1, dtype=bool)
            lut[members] = True
            ref_mask, pred_mask = lut[ref_idx], lut[pred_idx]
            if valid is not None:
                pred_mask &= valid
            nsd, hd95 = surface_metrics(ref_mask, pred_mask, spacing, tolerance_mm=nsd_tolerance_mm)
        out[label_key(item)] = LabelMetrics(dice=dice, iou=iou, tp=tp, fp=fp, fn=fn, tn=tn, n_pred=tp + fp,
                                            n_ref=tp + fn, nsd=nsd, hd95=hd95)
    return out
