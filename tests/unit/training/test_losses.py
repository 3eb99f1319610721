"""Losses: values and gradients against the reference (golden) and against a direct NumPy computation."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from autounet.errors import ConfigError
from autounet.training.losses import (
    DeepSupervisionLoss,
    DiceBCELoss,
    DiceCELoss,
    build_loss,
    deep_supervision_weights,
    pseudo_dice,
    pseudo_dice_counts,
    soft_dice_loss,
)

GOLDEN = Path(__file__).resolve().parents[2] / "data" / "golden" / "networks"
_CASES = json.loads((GOLDEN / "losses.json").read_text(encoding="utf-8"))


@dataclass(frozen=True)
class Labels:
    has_regions: bool
    ignore_label: int | None


# ---------------------------------------------------------------- reference golden


@pytest.fixture(scope="module")
def golden() -> dict[str, np.ndarray]:
    with np.load(GOLDEN / "losses.npz") as f:
        return {k: f[k] for k in f.files}


@pytest.mark.parametrize("case", _CASES, ids=[c["id"] for c in _CASES])
def test_loss_and_gradients_equal_reference(case: dict, golden: dict[str, np.ndarray]) -> None:
    k = case["id"]
    n = len(case["shapes"])
    logits = [torch.from_numpy(golden[f"{k}/logits{i}"]).requires_grad_() for i in range(n)]
    dtype = torch.bool if case["regions"] else torch.float32
    targets = [torch.from_numpy(golden[f"{k}/target{i}"]).to(dtype) for i in range(n)]
    loss = build_loss(Labels(case["regions"], case["ignore_label"]), batch_dice=case["batch_dice"],
                      deep_supervision_scales=[None] * n)
    assert isinstance(loss, DeepSupervisionLoss)
    np.testing.assert_allclose(loss.weights, golden[f"{k}/weights"], rtol=1e-12)
    value = loss(logits, targets)
    value.backward()
    assert value.item() == pytest.approx(float(golden[f"{k}/loss"]), rel=1e-5, abs=1e-6)
    for i in range(n):
        grad = logits[i].grad if logits[i].grad is not None else torch.zeros_like(logits[i])
        np.testing.assert_allclose(grad.numpy(), golden[f"{k}/grad{i}"], rtol=1e-4, atol=1e-7)
    assert loss.loss(logits[0].detach(), targets[0]).item() == pytest.approx(float(golden[f"{k}/loss_single"]),
                                                                               rel=1e-5, abs=1e-6)


# ---------------------------------------------------------------- direct NumPy computation


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max(1, keepdims=True))
    return e / e.sum(1, keepdims=True)


def _np_dice_ce(logits: np.ndarray, labels: np.ndarray, *, batch_dice: bool, ignore: int | None) -> float:
    """Dice (no background, smooth 1e-5, negative) + CE, written from the formulas of facts §5.6."""
    n_cls = logits.shape[1]
    valid = np.ones_like(labels, dtype=bool) if ignore is None else labels != ignore
    p = _softmax(logits.astype(np.float64))
    logp = np.log(p)
    # CE: mean over annotated voxels of -log p[label]
    lab = np.where(valid, labels, 0)
    picked = np.take_along_axis(logp, lab[:, None], 1)[:, 0]
    ce = -(picked * valid).sum() / max(valid.sum(), 1)
    onehot = np.stack([(lab == c) & valid for c in range(n_cls)], 1).astype(np.float64)
    m = valid[:, None].astype(np.float64)
    axes = tuple(range(2, logits.ndim))
    inter = (p * onehot * m).sum(axes)[:, 1:]
    spred = (p * m).sum(axes)[:, 1:]
    sgt = onehot.sum(axes)[:, 1:]
    if batch_dice:
        inter, spred, sgt = inter.sum(0), spred.sum(0), sgt.sum(0)
    dc = (2 * inter + 1e-5) / np.maximum(spred + sgt + 1e-5, 1e-8)
    return float(ce - dc.mean())


@pytest.mark.parametrize("batch_dice", [False, True])
@pytest.mark.parametrize("ignore", [None, 3])
def test_dice_ce_value_matches_numpy(batch_dice: bool, ignore: int | None, rng: np.random.Generator) -> None:
    logits = rng.normal(size=(3, 3, 5, 4, 6)) * 2
    labels = rng.integers(0, 4 if ignore else 3, size=(3, 5, 4, 6))
    loss = DiceCELoss(batch_dice=batch_dice, ignore_label=ignore)
    value = loss(torch.from_numpy(logits), torch.from_numpy(labels[:, None]).float())
    assert value.item() == pytest.approx(_np_dice_ce(logits, labels, batch_dice=batch_dice, ignore=ignore),
                                         rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("batch_dice", [False, True])
def test_dice_ce_gradients_are_exact(batch_dice: bool, rng: np.random.Generator) -> None:
    logits = torch.from_numpy(rng.normal(size=(2, 3, 3, 4))).requires_grad_()
    labels = torch.from_numpy(rng.integers(0, 4, size=(2, 1, 3, 4)))
    loss = DiceCELoss(batch_dice=batch_dice, ignore_label=3)
    assert torch.autograd.gradcheck(lambda x: loss(x, labels), (logits,))


def test_region_dice_bce_matches_numpy(rng: np.random.Generator) -> None:
    logits = rng.normal(size=(2, 2, 4, 5)) * 2
    target = rng.random(size=(2, 3, 4, 5)) < 0.4  # 2 regions + ignore mask channel
    loss = DiceBCELoss(batch_dice=False, use_ignore_label=True)
    value = loss(torch.from_numpy(logits), torch.from_numpy(target)).item()
    p = 1 / (1 + np.exp(-logits))
    gt = target[:, :2].astype(float)
    m = (~target[:, 2:]).astype(float)
    bce = -(gt * np.log(p) + (1 - gt) * np.log(1 - p))
    bce = (bce * m).sum() / m.sum()  # a per-voxel sum over regions, as the reference
    inter = (p * gt * m).sum((2, 3))
    dc = (2 * inter + 1e-5) / ((p * m).sum((2, 3)) + (gt * m).sum((2, 3)) + 1e-5)
    assert value == pytest.approx(bce - dc.mean(), rel=1e-9)
    logits_t = torch.from_numpy(logits).requires_grad_()
    assert torch.autograd.gradcheck(lambda x: loss(x, torch.from_numpy(target)), (logits_t,))


def test_unmasked_region_bce_is_the_mean(rng: np.random.Generator) -> None:
    logits = torch.from_numpy(rng.normal(size=(2, 3, 4, 4)))
    target = torch.from_numpy(rng.random(size=(2, 3, 4, 4)) < 0.5)
    dice = soft_dice_loss(torch.sigmoid(logits), target.double(), batch_dice=True)
    bce = torch.nn.functional.binary_cross_entropy_with_logits(logits, target.double())
    assert DiceBCELoss(batch_dice=True)(logits, target).item() == pytest.approx((bce + dice).item())


def test_all_ignored_batch_gives_finite_loss() -> None:
    logits = torch.randn(2, 3, 4, 4, requires_grad=True)
    target = torch.full((2, 1, 4, 4), 3.0)
    value = DiceCELoss(batch_dice=False, ignore_label=3)(logits, target)
    assert torch.isfinite(value)
    # CE contributes 0; Dice of empty masked sums is smooth/smooth = 1 -> loss -1
    assert value.item() == pytest.approx(-1.0)
    value.backward()
    assert torch.count_nonzero(logits.grad) == 0


def test_perfect_prediction_dice_is_minus_one() -> None:
    labels = torch.randint(0, 3, (2, 6, 6))
    logits = 50.0 * torch.nn.functional.one_hot(labels, 3).permute(0, 3, 1, 2).double()
    value = DiceCELoss(batch_dice=True)(logits, labels[:, None])
    assert value.item() == pytest.approx(-1.0, abs=1e-6)


def test_target_shape_errors() -> None:
    with pytest.raises(ConfigError, match="one channel"):
        DiceCELoss(batch_dice=False)(torch.randn(1, 3, 4, 4), torch.zeros(1, 2, 4, 4))
    with pytest.raises(ConfigError, match="does not match"):
        DiceCELoss(batch_dice=False)(torch.randn(1, 3, 4, 4), torch.zeros(1, 1, 4, 5))
    with pytest.raises(ConfigError, match="region"):
        DiceBCELoss(batch_dice=False)(torch.randn(1, 3, 4, 4), torch.zeros(1, 2, 4, 4))


# ---------------------------------------------------------------- deep supervision


def test_deep_supervision_weights() -> None:
    np.testing.assert_allclose(deep_supervision_weights(5), [8 / 15, 4 / 15, 2 / 15, 1 / 15, 0])  # 0.5333 ...
    np.testing.assert_allclose(deep_supervision_weights(3), [2 / 3, 1 / 3, 0])
    w = deep_supervision_weights(3, ddp_without_compile=True)
    assert w[-1] == pytest.approx(1e-6 / 1.500001) and sum(w) == pytest.approx(1.0)
    assert deep_supervision_weights(1) == [1.0]


def test_deep_supervision_sum_and_skipping() -> None:
    calls: list[int] = []

    class Probe(torch.nn.Module):
        def forward(self, out: torch.Tensor, tgt: torch.Tensor) -> torch.Tensor:
            calls.append(out.shape[-1])
            return (out - tgt).abs().mean()

    loss = DeepSupervisionLoss(Probe(), [0.75, 0.25, 0.0])
    outs = [torch.full((1, 1, s), 2.0) for s in (8, 4, 2)]
    tgts = [torch.zeros(1, 1, s) for s in (8, 4, 2)]
    assert loss(outs, tgts).item() == pytest.approx(2.0)
    assert calls == [8, 4]  # the zero-weighted output is never evaluated
    with pytest.raises(ConfigError, match="3 weights"):
        loss(outs[:2], tgts[:2])
    with pytest.raises(ConfigError):
        DeepSupervisionLoss(Probe(), [0.0, 0.0])


def test_build_loss_variants() -> None:
    plain = build_loss(Labels(False, None), batch_dice=True, deep_supervision_scales=None)
    assert isinstance(plain, DiceCELoss) and plain.batch_dice and plain.ignore_label is None
    ds = build_loss(Labels(True, 4), batch_dice=False, deep_supervision_scales=[(1, 1), (0.5, 0.5), (0.25, 0.25)])
    assert isinstance(ds, DeepSupervisionLoss) and isinstance(ds.loss, DiceBCELoss) and ds.loss.use_ignore_label
    assert ds.weights[-1] == 0.0
    ddp = build_loss(Labels(False, 2), batch_dice=True, deep_supervision_scales=[1, 2, 3], ddp=True)
    assert ddp.weights[-1] > 0
    ddp_compiled = build_loss(Labels(False, 2), batch_dice=True, deep_supervision_scales=[1, 2, 3], ddp=True,
                              compiled=True)
    assert ddp_compiled.weights[-1] == 0.0


# ---------------------------------------------------------------- pseudo Dice


def test_pseudo_dice_counts_label_mode(rng: np.random.Generator) -> None:
    logits = rng.normal(size=(2, 3, 5, 6))
    target = rng.integers(0, 4, size=(2, 1, 5, 6))  # 3 = ignore
    tp, fp, fn = pseudo_dice_counts(torch.from_numpy(logits), torch.from_numpy(target), has_regions=False,
                                    ignore_label=3)
    pred = logits.argmax(1)
    valid = target[:, 0] != 3
    for i, c in enumerate((1, 2)):
        p, g = (pred == c) & valid, (target[:, 0] == c) & valid
        assert (tp[i].item(), fp[i].item(), fn[i].item()) == ((p & g).sum(), (p & ~g).sum(), (~p & g).sum())


def test_pseudo_dice_counts_region_mode(rng: np.random.Generator) -> None:
    logits = rng.normal(size=(2, 2, 4, 4))
    target = rng.random(size=(2, 3, 4, 4)) < 0.5
    tp, fp, fn = pseudo_dice_counts(torch.from_numpy(logits), torch.from_numpy(target), has_regions=True,
                                    ignore_label=5)
    valid = ~target[:, 2]
    for r in range(2):
        p, g = (logits[:, r] > 0) & valid, target[:, r] & valid
        assert (tp[r].item(), fp[r].item(), fn[r].item()) == ((p & g).sum(), (p & ~g).sum(), (~p & g).sum())


def test_pseudo_dice_values_and_nan() -> None:
    per_class, mean = pseudo_dice([3, 0, 1], [1, 0, 0], [0, 0, 1])
    assert per_class[0] == pytest.approx(6 / 7) and np.isnan(per_class[1]) and per_class[2] == pytest.approx(2 / 3)
    assert mean == pytest.approx((6 / 7 + 2 / 3) / 2)
    assert np.isnan(pseudo_dice([0], [0], [0])[1])
