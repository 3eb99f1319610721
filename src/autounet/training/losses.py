"""Training losses of the reference recipe (facts §5.6, §5.11) and the validation pseudo-Dice counts (§5.8).

- Label (softmax) mode: :class:`DiceCELoss` = ``CE + soft Dice`` (weights 1:1). The Dice term excludes the
  background, adds ``smooth = 1e-5`` to numerator and denominator, and is the **negative** mean Dice. With an ignore
  label, CE ignores it (``ignore_index``; the CE term is 0 when a batch has no annotated voxel) and the Dice term
  masks it.
- Region (sigmoid) mode: :class:`DiceBCELoss` = ``BCE-with-logits + soft Dice`` over all region channels. With an
  ignore label the target carries the ignore mask as its last channel; the masked BCE is
  ``sum(bce × mask) / max(sum(mask), 1e-8)`` (so, like the reference, a per-voxel *sum* over regions).
- :class:`DeepSupervisionLoss` weights the per-resolution losses by ``1/2^i``, the lowest resolution 0 (1e-6 under
  DDP without compile), normalised to sum 1; zero-weighted outputs are skipped.
- ``batch_dice`` pools the Dice sums over the batch — and over all DDP ranks (gathered with gradient) when a
  process group is initialised and ``ddp=True``.

Tensors: logits ``(B, C, *spatial)``; label targets ``(B, 1, *spatial)`` (any integer or float dtype); region
targets ``(B, R[+1], *spatial)`` (bool/int/float 0/1).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from torch import nn

from autounet.errors import ConfigError

DICE_SMOOTH = 1e-5
_CLAMP = 1e-8


class LabelsLike(Protocol):
    """What :func:`build_loss` needs to know about the labels (``autounet.labels.LabelSpec`` provides it)."""

    @property
    def has_regions(self) -> bool: ...

    @property
    def ignore_label(self) -> int | None: ...


def soft_dice_loss(probs: torch.Tensor, onehot: torch.Tensor, *, mask: torch.Tensor | None = None,
                   batch_dice: bool, smooth: float = DICE_SMOOTH, ddp: bool = False) -> torch.Tensor:
    """``-mean((2·I + smooth) / max(Σp + Σg + smooth, 1e-8))`` over channels (and samples unless ``batch_dice``).

    ``probs`` and ``onehot`` have the same shape ``(B, C, *spatial)`` and contain only the channels that count
    (callers drop the background); ``mask`` ``(B, 1, *spatial)`` zeroes voxels that must not count.
    """
    axes = tuple(range(2, probs.ndim))
    acc = torch.promote_types(probs.dtype, torch.float32)  # float32 sums for half/bf16/float32, as the reference
    with torch.no_grad():
        gt = onehot.to(acc)
        if mask is not None:
            gt = gt * mask
        sum_gt = gt.sum(axes, dtype=acc)
    if mask is not None:
        probs = probs * mask
    intersect = (probs * gt).sum(axes, dtype=acc)
    sum_pred = probs.sum(axes, dtype=acc)
    if batch_dice:
        if ddp and _distributed():
            intersect = _AllGatherGrad.apply(intersect).sum(0)
            sum_pred = _AllGatherGrad.apply(sum_pred).sum(0)
            sum_gt = _AllGatherGrad.apply(sum_gt).sum(0)
        intersect, sum_pred, sum_gt = intersect.sum(0), sum_pred.sum(0), sum_gt.sum(0)
    dc = (2 * intersect + smooth) / (sum_gt + sum_pred + smooth).clamp_min(_CLAMP)
    return -dc.mean()


class DiceCELoss(nn.Module):
    """Softmax mode: ``weight_ce · CE + weight_dice · Dice`` (Dice without background), optional ignore label."""

    def __init__(self, *, batch_dice: bool, ignore_label: int | None = None, smooth: float = DICE_SMOOTH,
                 weight_ce: float = 1.0, weight_dice: float = 1.0, ddp: bool = False) -> None:
        super().__init__()
        self.batch_dice = batch_dice
        self.ignore_label = ignore_label
        self.smooth = smooth
        self.weight_ce = weight_ce
        self.weight_dice = weight_dice
        self.ddp = ddp

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        labels = _label_map(logits, target)
        mask = None
        if self.ignore_label is not None:
            valid = labels != self.ignore_label
            mask = valid.unsqueeze(1)
            dice_labels = torch.where(valid, labels, 0)
        else:
            dice_labels = labels
        loss = logits.new_zeros((), dtype=torch.float32)
        if self.weight_dice != 0:
            probs = torch.softmax(logits, 1)[:, 1:]
            onehot = _one_hot(dice_labels, logits.shape[1], dtype=probs.dtype)[:, 1:]
            loss = loss + self.weight_dice * soft_dice_loss(
                probs, onehot, mask=mask.to(probs.dtype) if mask is not None else None,
                batch_dice=self.batch_dice, smooth=self.smooth, ddp=self.ddp)
        if self.weight_ce != 0:
            if mask is None or self.ignore_label is None:  # mask is set exactly when ignore_label is
                ce = F.cross_entropy(logits, labels)
            else:  # mean over annotated voxels; 0 (not NaN) when there are none, without a host sync
                ce = (F.cross_entropy(logits, labels, ignore_index=self.ignore_label, reduction="sum")
                      / mask.sum().clamp_min(1))
            loss = loss + self.weight_ce * ce
        return loss


class DiceBCELoss(nn.Module):
    """Region mode: ``weight_ce · BCE-with-logits + weight_dice · Dice`` over all region channels.

    With ``use_ignore_label`` the target's last channel is the ignore mask (1 = ignore).
    """

    def __init__(self, *, batch_dice: bool, use_ignore_label: bool = False, smooth: float = DICE_SMOOTH,
                 weight_ce: float = 1.0, weight_dice: float = 1.0, ddp: bool = False) -> None:
        super().__init__()
        self.batch_dice = batch_dice
        self.use_ignore_label = use_ignore_label
        self.smooth = smooth
        self.weight_ce = weight_ce
        self.weight_dice = weight_dice
        self.ddp = ddp

    def forward(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        mask = None
        if self.use_ignore_label:
            mask = (target[:, -1:] == 0)
            target = target[:, :-1]
        if target.shape != logits.shape:
            msg = (f"Region loss: target shape {tuple(target.shape)} does not match the logits "
                   f"{tuple(logits.shape)} (one channel per region"
                   f"{', plus the ignore mask' if mask is not None else ''}).")
            raise ConfigError(msg)
        acc = torch.promote_types(logits.dtype, torch.float32)
        target = target.to(acc)
        fmask = mask.to(acc) if mask is not None else None
        dc = soft_dice_loss(torch.sigmoid(logits), target, mask=fmask, batch_dice=self.batch_dice,
                            smooth=self.smooth, ddp=self.ddp)
        if fmask is None:
            bce = F.binary_cross_entropy_with_logits(logits, target.to(logits.dtype))
        else:
            per_voxel = F.binary_cross_entropy_with_logits(logits, target.to(logits.dtype), reduction="none")
            bce = (per_voxel * fmask).sum() / fmask.sum().clamp_min(_CLAMP)
        return self.weight_ce * bce + self.weight_dice * dc


class DeepSupervisionLoss(nn.Module):
    """``Σ_i w_i · loss(outputs[i], targets[i])`` over the outputs with ``w_i != 0``."""

    def __init__(self, loss: nn.Module, weights: Sequence[float]) -> None:
        super().__init__()
        if not weights or all(w == 0 for w in weights):
            msg = f"Deep supervision needs at least one non-zero weight, got {list(weights)}."
            raise ConfigError(msg)
        self.loss = loss
        self.weights = tuple(float(w) for w in weights)

    def forward(self, outputs: Sequence[torch.Tensor], targets: Sequence[torch.Tensor]) -> torch.Tensor:
        if len(outputs) != len(self.weights) or len(targets) != len(self.weights):
            msg = (f"Deep supervision: {len(self.weights)} weights but {len(outputs)} outputs and "
                   f"{len(targets)} targets.")
            raise ConfigError(msg)
        total: torch.Tensor | None = None
        for w, out, tgt in zip(self.weights, outputs, targets):
            if w == 0:
                continue
            term = w * self.loss(out, tgt)
            total = term if total is None else total + term
        assert total is not None  # guaranteed by the constructor
        return total


def deep_supervision_weights(n_outputs: int, *, ddp_without_compile: bool = False) -> list[float]:
    """``1/2^i`` for ``i < n``, the last set to 0 (1e-6 under DDP without compile), normalised to sum 1.

    With a single output the weight is 1 (nothing to zero).
    """
    if n_outputs < 1:
        msg = f"Deep supervision needs at least one output, got {n_outputs}."
        raise ConfigError(msg)
    raw = [1.0 / (2 ** i) for i in range(n_outputs)]
    if n_outputs > 1:
        raw[-1] = 1e-6 if ddp_without_compile else 0.0
    total = sum(raw)
    return [w / total for w in raw]


def build_loss(labels: LabelsLike, *, batch_dice: bool, deep_supervision_scales: Sequence[Any] | None,
               ddp: bool = False, compiled: bool = False, weight_ce: float = 1.0, weight_dice: float = 1.0,
               smooth: float = DICE_SMOOTH) -> nn.Module:
    """The reference loss for ``labels``: Dice+CE (labels) or Dice+BCE (regions), wrapped for deep supervision.

    Args:
        labels: provides ``has_regions`` and ``ignore_label``.
        batch_dice: pool Dice sums over the batch (from the plans).
        deep_supervision_scales: one entry per network output (``None`` or empty: no deep supervision).
        ddp: running under DDP (batch Dice gathers over ranks; the last weight becomes 1e-6 unless ``compiled``).
        compiled: the network is ``torch.compile``-d (affects only the DDP weight rule, as in the reference).
        weight_ce / weight_dice / smooth: the terms' weights and the Dice smoothing (reference: 1, 1, 1e-5).
    """
    base: nn.Module
    terms = {"weight_ce": weight_ce, "weight_dice": weight_dice, "smooth": smooth}
    if labels.has_regions:
        base = DiceBCELoss(batch_dice=batch_dice, use_ignore_label=labels.ignore_label is not None, ddp=ddp, **terms)
    else:
        base = DiceCELoss(batch_dice=batch_dice, ignore_label=labels.ignore_label, ddp=ddp, **terms)
    if not deep_supervision_scales:
        return base
    weights = deep_supervision_weights(len(deep_supervision_scales), ddp_without_compile=ddp and not compiled)
    return DeepSupervisionLoss(base, weights)


@torch.no_grad()
def pseudo_dice_counts(logits: torch.Tensor, target: torch.Tensor, *, has_regions: bool,
                       ignore_label: int | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Hard TP, FP, FN per class, summed over batch and space (the validation "pseudo Dice", facts §5.8).

    Label mode: argmax prediction, background class dropped (``C - 1`` entries), ``ignore_label`` voxels masked.
    Region mode: ``sigmoid > 0.5`` per region; with an ignore label the target's last channel is the ignore mask.
    Returns int64 tensors (exact counts) on the logits' device (int64 also works on MPS, float64 does not).
    """
    if has_regions:
        pred = torch.sigmoid(logits) > 0.5
        mask = None
        if ignore_label is not None:
            mask = target[:, -1:] == 0
            target = target[:, :-1]
        gt = target != 0
    else:
        labels = _label_map(logits, target)
        n_classes = logits.shape[1]
        mask = None
        if ignore_label is not None:
            valid = labels != ignore_label
            mask = valid.unsqueeze(1)
            labels = torch.where(valid, labels, 0)
        pred = _one_hot(logits.argmax(1), n_classes, dtype=torch.bool)[:, 1:]
        gt = _one_hot(labels, n_classes, dtype=torch.bool)[:, 1:]
    if mask is not None:
        pred = pred & mask
        gt = gt & mask
    axes = [0, *range(2, pred.ndim)]
    tp = (pred & gt).sum(axes, dtype=torch.int64)
    fp = (pred & ~gt).sum(axes, dtype=torch.int64)
    fn = (~pred & gt).sum(axes, dtype=torch.int64)
    return tp, fp, fn


def pseudo_dice(tp: Any, fp: Any, fn: Any) -> tuple[list[float], float]:
    """Per-class ``2TP / (2TP + FP + FN)`` (NaN for 0/0) and their NaN-mean (NaN if all are NaN)."""
    tp_t, fp_t, fn_t = (torch.as_tensor(v).cpu().to(torch.float64) for v in (tp, fp, fn))
    denom = 2 * tp_t + fp_t + fn_t
    per_class = torch.where(denom > 0, 2 * tp_t / denom.clamp_min(1), torch.full_like(denom, float("nan")))
    valid = per_class[~per_class.isnan()]
    mean = float(valid.mean()) if valid.numel() else float("nan")
    return [float(v) for v in per_class], mean


def _label_map(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``(B, 1, *spatial)`` or ``(B, *spatial)`` target → ``(B, *spatial)`` int64 labels."""
    if target.ndim == logits.ndim:
        if target.shape[1] != 1:
            msg = (f"Label target must have one channel, got shape {tuple(target.shape)} for logits "
                   f"{tuple(logits.shape)}.")
            raise ConfigError(msg)
        target = target[:, 0]
    if target.shape[0] != logits.shape[0] or target.shape[1:] != logits.shape[2:]:
        msg = f"Label target shape {tuple(target.shape)} does not match logits {tuple(logits.shape)}."
        raise ConfigError(msg)
    return target.long()


def _one_hot(labels: torch.Tensor, n_classes: int, *, dtype: torch.dtype) -> torch.Tensor:
    """``(B, *spatial)`` labels → ``(B, n_classes, *spatial)`` one-hot (labels outside the range: all zero)."""
    classes = torch.arange(n_classes, device=labels.device).view(1, -1, *([1] * (labels.ndim - 1)))
    return (labels.unsqueeze(1) == classes).to(dtype)


def _distributed() -> bool:
    return torch.distributed.is_available() and torch.distributed.is_initialized()


class _AllGatherGrad(torch.autograd.Function):
    """All-gather along a new leading axis; the backward sums the gradients of all ranks for this rank's slice."""

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor) -> torch.Tensor:
        world = torch.distributed.get_world_size()
        gathered = [torch.zeros_like(tensor) for _ in range(world)]
        torch.distributed.all_gather(gathered, tensor.contiguous())
        return torch.stack(gathered, 0)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous()
        torch.distributed.all_reduce(grad, op=torch.distributed.ReduceOp.SUM)
        return grad[torch.distributed.get_rank()]
