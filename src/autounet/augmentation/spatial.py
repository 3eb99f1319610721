"""Rotation and scaling of a batch, resampled from the enlarged patch onto the final patch (facts §5.4 step 2).

Per sample: with ``p_rotation`` every axis gets an angle from the rotation range (3D: ``A = Rz·Ry·Rx·S``; 2D
and dummy-2D: one in-plane angle); with ``p_scaling`` one factor (or one per axis) from the scaling range.
Output voxel ``o`` (offset from the centre of the final patch) samples the input at ``A·o + c``, where ``c`` is
the centre of the input. Samples with neither rotation nor scaling are plain centre crops without
interpolation; the others go through one batched ``affine_grid``/``grid_sample``: images (bi/tri)linearly with
zero padding, segmentations label-preservingly (see :func:`resample_labels`).

The crop and the resampling share one centre: ``c = floor(n/2) - m//2 + (m-1)/2`` per axis (input size ``n``,
output size ``m``), so an identity transform through ``grid_sample`` reproduces the crop exactly. (The reference
centres its grid at ``(n-1)/2``, half a voxel away from its own crop when ``n - m`` is odd.)
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from autounet.augmentation import _sampling
from autounet.augmentation.config import SpatialConfig

PAD_LABEL = -1
"""Segmentation value outside the loaded patch (and outside the non-zero mask): trained as background later."""

_TIE_TOLERANCE = 1e-4
_MAX_STACK_ELEMENTS = 2**26  # indicator floats per grid_sample call (256 MiB)


@dataclass(frozen=True)
class SpatialParams:
    """Per-sample spatial parameters (CPU tensors).

    Attributes:
        rotate: ``(B,)`` bool, sample is rotated.
        scale: ``(B,)`` bool, sample is scaled.
        angles: ``(B, 3)`` radians about spatial axes 0, 1, 2 (3D) or ``(B, 1)`` (2D); 0 where not rotated.
        scales: ``(B, ndim)`` scale factor per axis; 1 where not scaled.
    """

    rotate: torch.Tensor
    scale: torch.Tensor
    angles: torch.Tensor
    scales: torch.Tensor

    @property
    def resample(self) -> torch.Tensor:
        """``(B,)`` bool: samples that need interpolation (all others are plain crops)."""
        return self.rotate | self.scale


def make_params(config: SpatialConfig, batch_size: int, *, ndim: int, rotation_rad: tuple[float, float],
                generator: torch.Generator) -> SpatialParams:
    """Draw rotation and scaling for ``batch_size`` samples of a ``ndim``-D spatial transform."""
    rotate = _sampling.bernoulli(config.p_rotation, (batch_size,), generator)
    scale = _sampling.bernoulli(config.p_scaling, (batch_size,), generator)
    n_angles = 3 if ndim == 3 else 1
    angles = _sampling.uniform(rotation_rad, (batch_size, n_angles), generator) * rotate[:, None]
    shared = _sampling.bernoulli(config.p_synchronize_scaling, (batch_size, 1), generator)
    per_axis = _sampling.uniform(config.scaling, (batch_size, ndim), generator)
    one = _sampling.uniform(config.scaling, (batch_size, 1), generator)
    factors = torch.where(shared, one.expand(-1, ndim), per_axis)
    scales = torch.where(scale[:, None], factors, torch.ones_like(factors))
    return SpatialParams(rotate=rotate, scale=scale, angles=angles, scales=scales)


def affine_matrices(params: SpatialParams) -> torch.Tensor:
    """``(B, d, d)`` float64 matrices in spatial axis order: ``Rz·Ry·Rx·S`` (3D) or ``R·S`` (2D)."""
    ndim = params.scales.shape[1]
    s = torch.diag_embed(params.scales.to(torch.float64))
    if ndim == 2:
        return _rot2(params.angles[:, 0]) @ s
    a = params.angles.to(torch.float64)
    return _rot3(a[:, 2], (0, 1)) @ _rot3(a[:, 1], (2, 0)) @ _rot3(a[:, 0], (1, 2)) @ s


def _rot2(angle: torch.Tensor) -> torch.Tensor:
    c, s = torch.cos(angle), torch.sin(angle)
    return torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)


def _rot3(angle: torch.Tensor, plane: tuple[int, int]) -> torch.Tensor:
    """Rotation in the plane of axes ``(i, j)``: ``e_i -> cos e_i + sin e_j``."""
    i, j = plane
    m = torch.eye(3, dtype=torch.float64).repeat(angle.shape[0], 1, 1)
    c, s = torch.cos(angle), torch.sin(angle)
    m[:, i, i], m[:, j, j], m[:, i, j], m[:, j, i] = c, c, -s, s
    return m


def crop_start(in_shape: Sequence[int], out_shape: Sequence[int]) -> tuple[int, ...]:
    """Lower corner of the centre crop (may be negative when the input is smaller: padded)."""
    return tuple(n // 2 - m // 2 for n, m in zip(in_shape, out_shape))


def centre_crop(x: torch.Tensor, out_shape: Sequence[int], *, pad_value: float) -> torch.Tensor:
    """Centre crop of the trailing spatial axes of ``(B, C, *in)`` to ``out_shape``, padding with ``pad_value``."""
    in_shape = x.shape[2:]
    starts = crop_start(in_shape, out_shape)
    src = tuple(slice(max(0, s), min(n, s + m)) for s, n, m in zip(starts, in_shape, out_shape))
    cropped = x[(slice(None), slice(None), *src)]
    if tuple(cropped.shape[2:]) == tuple(out_shape):
        return cropped
    pad: list[int] = []
    for s, n, m in reversed(list(zip(starts, in_shape, out_shape))):
        before = max(0, -s)
        pad += [before, m - before - (min(n, s + m) - max(0, s))]
    return F.pad(cropped, pad, mode="constant", value=pad_value)


def sampling_theta(matrices: torch.Tensor, in_shape: Sequence[int], out_shape: Sequence[int]) -> torch.Tensor:
    """``affine_grid`` matrices ``(B, d, d+1)`` (x-first axis order, align_corners=False) for ``A·o + c``."""
    n = torch.tensor(in_shape, dtype=torch.float64)
    m = torch.tensor(out_shape, dtype=torch.float64)
    centre = torch.tensor(crop_start(in_shape, out_shape), dtype=torch.float64) + (m - 1) / 2
    lin = matrices * m[None, None, :] / n[None, :, None]
    trans = (2 * centre + 1) / n - 1
    theta = torch.cat([lin, trans[None, :, None].expand(lin.shape[0], -1, -1)], dim=2)
    rev = list(range(len(in_shape)))[::-1]
    return theta[:, rev][:, :, [*rev, len(in_shape)]]


def sampling_grid(params: SpatialParams, idx: torch.Tensor, in_shape: Sequence[int], out_shape: Sequence[int],
                  device: torch.device) -> torch.Tensor:
    """The ``grid_sample`` grid ``(n, *out, d)`` for the samples ``idx`` (CPU indices).

    Equal to ``affine_grid(theta, align_corners=False)``, built as a sum of broadcast per-axis terms (each grid
    coordinate is affine in the output index), which avoids a matrix product per output voxel.
    """
    sub = SpatialParams(*(t[idx] for t in (params.rotate, params.scale, params.angles, params.scales)))
    theta = sampling_theta(affine_matrices(sub), in_shape, out_shape).to(device=device, dtype=torch.float32)
    n, d = len(idx), len(out_shape)
    grid = torch.empty((n, *out_shape, d), dtype=torch.float32, device=device)
    # affine_grid's base coordinates, x first: axis j of theta's columns is spatial axis d - 1 - j
    base = [(2 * torch.arange(m, dtype=torch.float32, device=device) + 1) / m - 1 for m in out_shape[::-1]]
    for k in range(d):
        acc = theta[:, k, d].view(n, *([1] * d)).expand(n, *out_shape).clone()
        for j in range(d):
            shape = [n] + [1] * d
            shape[d - j] = out_shape[d - 1 - j]
            acc += theta[:, k, j].view(n, *([1] * d)) * base[j].view(1, *shape[1:])
        grid[..., k] = acc
    return grid


def apply(image: torch.Tensor, seg: torch.Tensor | None, params: SpatialParams, *, patch_size: Sequence[int],
          segmentation_mode: str = "linear_onehot") -> tuple[torch.Tensor, torch.Tensor | None]:
    """Crop/resample ``image (B, C, *in)`` and ``seg (B, S, *in)`` (integer labels) onto ``patch_size``."""
    out_shape = tuple(int(p) for p in patch_size)
    img_out = centre_crop(image, out_shape, pad_value=0.0)
    seg_out = None if seg is None else centre_crop(seg, out_shape, pad_value=PAD_LABEL)
    idx = params.resample.nonzero(as_tuple=True)[0]
    if len(idx) == 0:
        return img_out.clone(), (None if seg_out is None else seg_out.clone())
    grid = sampling_grid(params, idx, image.shape[2:], out_shape, image.device)
    didx = idx.to(image.device)
    img_sub = image.index_select(0, didx).float()
    if seg is None or seg_out is None:
        return img_out.index_copy(0, didx, _sample_linear(img_sub, grid).to(image.dtype)), None
    warped, labels = resample_labels(seg.index_select(0, didx), grid, mode=segmentation_mode, image=img_sub)
    assert warped is not None  # an image was passed
    return (img_out.index_copy(0, didx, warped.to(image.dtype)), seg_out.index_copy(0, didx, labels))


def _sample_linear(x: torch.Tensor, grid: torch.Tensor) -> torch.Tensor:
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def resample_labels(seg: torch.Tensor, grid: torch.Tensor, *, mode: str = "linear_onehot",
                    pad_label: int = PAD_LABEL, image: torch.Tensor | None = None
                    ) -> tuple[torch.Tensor | None, torch.Tensor]:
    """Label-preserving resampling of integer labels ``seg (n, S, *in)`` at ``grid`` (normalised, x-first).

    ``nearest`` takes the nearest input voxel. ``linear_onehot`` interpolates every label's indicator
    (bi/tri)linearly and keeps the label with the highest score; where the two best scores tie (a sample point
    exactly between labels) the nearest input voxel's label wins if it is one of them. Outside the input counts
    as ``pad_label``. Every output value is a value of the input or ``pad_label``: labels never mix.

    An ``image (n, C, *in)`` given here is (bi/tri)linearly resampled in the same ``grid_sample`` call (the
    sampling weights are computed once for all channels) and returned first; otherwise ``None`` is.
    """
    if mode == "nearest":
        warped = None if image is None else _sample_linear(image, grid)
        return warped, _sample_nearest(seg, grid, pad_label)
    if mode != "linear_onehot":
        msg = f"unknown segmentation resampling mode {mode!r}"
        raise ValueError(msg)
    labels = _label_values(seg, pad_label, reach_outside=_may_reach_outside(grid, seg.shape[2:]))
    n, s = seg.shape[:2]
    out_shape = (n, s, *grid.shape[1:-1])
    c = 0 if image is None else image.shape[1]
    if len(labels) == 1:
        warped = None if image is None else _sample_linear(image, grid)
        return warped, torch.full(out_shape, int(labels[0]), dtype=seg.dtype, device=seg.device)
    per_label = max(1, n * s * math.prod(seg.shape[2:]))
    chunk = max(1, _MAX_STACK_ELEMENTS // per_label)
    # The scores of all labels sum to 1 (the indicators partition space, the padding label counted outside), so
    # with a single chunk one label (background if present) is not sampled but recovered as 1 - sum(others).
    implicit = None
    if len(labels) <= chunk:
        zero = (labels == 0).nonzero()
        implicit = int(zero[0, 0]) if len(zero) else len(labels) - 1
    sampled_labels = labels if implicit is None else torch.cat([labels[:implicit], labels[implicit + 1:]])
    warped = None
    best: torch.Tensor | None = None
    best_label: torch.Tensor | None = None
    chunks = []
    total = None
    for start in range(0, len(sampled_labels), chunk):
        part = sampled_labels[start:start + chunk]
        lead = image if (start == 0 and image is not None) else None
        sampled = _sample_linear(_stack_indicators(seg, part, pad_label, lead=lead), grid)
        if lead is not None:
            warped, sampled = sampled[:, :c], sampled[:, c:]
        scores = sampled.view(n, s, len(part), *out_shape[2:])
        if bool((part == pad_label).any()):
            scores[:, :, int((part == pad_label).nonzero()[0, 0])] += 1.0
        if implicit is not None:
            total = scores.sum(dim=2)
        best, best_label = _running_max(scores, part, best, best_label)
        chunks.append((part, scores))
    if implicit is not None and total is not None:
        rest = (1.0 - total)[:, :, None]
        part = labels[implicit:implicit + 1]
        best, best_label = _running_max(rest, part, best, best_label)
        chunks.append((part, rest))
    assert best is not None and best_label is not None
    result = best_label.to(seg.dtype)
    # the indicators partition space (the padding label counted outside), so scores sum to 1 and two labels can
    # only share the top score where it is at most 1/2
    maybe = best <= 0.5 + _TIE_TOLERANCE
    if bool(maybe.any()):
        pos = maybe.nonzero()
        top = best[maybe]
        second = torch.full_like(top, -math.inf)
        for part, scores in chunks:
            vals = scores.movedim(2, -1)[maybe]  # (k, len(part))
            is_best = part[None].to(result.dtype) == result[maybe][:, None]
            second = torch.maximum(second, vals.masked_fill(is_best, -math.inf).amax(dim=1))
        tied = (top - second) < _TIE_TOLERANCE
        if bool(tied.any()):
            result = _settle_ties(result, pos[tied], top[tied], seg, grid, pad_label)
    return warped, result


def _running_max(scores: torch.Tensor, labels: torch.Tensor, best: torch.Tensor | None,
                 best_label: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Fold the label scores ``(n, S, L, *out)`` into the running best score and label."""
    value, arg = scores.max(dim=2)
    if best is None or best_label is None:
        return value, labels[arg]
    better = value > best
    return torch.where(better, value, best), torch.where(better, labels[arg], best_label)


def _label_values(seg: torch.Tensor, pad_label: int, *, reach_outside: bool) -> torch.Tensor:
    """Candidate labels (sorted): the value range of ``seg`` when small (absent values score 0), else its unique
    values; plus ``pad_label`` when the kernel may reach outside the input."""
    lo, hi = (int(v) for v in torch.aminmax(seg))
    if reach_outside:
        lo, hi = min(lo, pad_label), max(hi, pad_label)
    if hi - lo < 64:
        return torch.arange(lo, hi + 1, device=seg.device, dtype=torch.int64)
    values = torch.unique(seg).to(torch.int64)
    if reach_outside:
        values = torch.unique(torch.cat([values, values.new_tensor([pad_label])]))
    return values


def _stack_indicators(seg: torch.Tensor, labels: torch.Tensor, pad_label: int, *,
                      lead: torch.Tensor | None = None) -> torch.Tensor:
    """``(n, C + S*L, *in)``: optional ``lead`` channels, then float indicators per seg channel and label.

    The padding label's indicator is stored minus 1 (zero padding then makes it 1 outside the input).
    """
    n, s = seg.shape[:2]
    c = 0 if lead is None else lead.shape[1]
    buf = torch.empty((n, c + s * len(labels), *seg.shape[2:]), dtype=torch.float32, device=seg.device)
    if lead is not None:
        buf[:, :c] = lead
    onehot = buf[:, c:].view(n, s, len(labels), *seg.shape[2:])
    for k, value in enumerate(labels.tolist()):
        torch.eq(seg, value, out=onehot[:, :, k])
        if value == pad_label:
            onehot[:, :, k] -= 1.0
    return buf


def _settle_ties(result: torch.Tensor, pos: torch.Tensor, best: torch.Tensor, seg: torch.Tensor,
                 grid: torch.Tensor, pad_label: int) -> torch.Tensor:
    """At tied voxels ``pos (k, 2 + d)`` take the nearest input voxel's label if its score is (within tolerance)
    the best; elsewhere, and where the nearest label is not among the tied ones, the first maximum stands."""
    g = grid[(pos[:, 0], *pos[:, 2:].unbind(1))].flip(-1)  # (k, d) in spatial axis order
    size = torch.tensor(seg.shape[2:], device=grid.device, dtype=grid.dtype)
    idx = torch.round(((g + 1) * size - 1) / 2).long()  # the voxel grid_sample's 'nearest' picks
    inside = ((idx >= 0) & (idx < size.long())).all(dim=1)
    idx = torch.minimum(idx.clamp_min(0), size.long() - 1)
    nearest = seg[(pos[:, 0], pos[:, 1], *idx.unbind(1))]
    nearest = torch.where(inside, nearest, torch.full_like(nearest, pad_label))
    own = _score_at(seg, grid, pos, nearest, pad_label)
    take = own >= best - _TIE_TOLERANCE
    out = result.clone()
    where = tuple(pos.unbind(1))
    out[where] = torch.where(take, nearest, result[where])
    return out


def _score_at(seg: torch.Tensor, grid: torch.Tensor, pos: torch.Tensor, label: torch.Tensor,
              pad_label: int) -> torch.Tensor:
    """Linear-interpolation score of ``label[k]`` at output voxel ``pos[k]`` (outside counts as ``pad_label``)."""
    g = grid[(pos[:, 0], *pos[:, 2:].unbind(1))].flip(-1)
    size = torch.tensor(seg.shape[2:], device=grid.device, dtype=torch.float64)
    p = ((g.double() + 1) * size - 1) / 2
    base = torch.floor(p)
    frac = p - base
    score = torch.zeros(len(pos), dtype=torch.float64, device=grid.device)
    d = seg.ndim - 2
    for corner in range(2 ** d):
        bits = torch.tensor([(corner >> (d - 1 - a)) & 1 for a in range(d)], device=grid.device)
        c = base.long() + bits
        w = torch.where(bits.bool(), frac, 1 - frac).prod(dim=1)
        inside = ((c >= 0) & (c < size.long())).all(dim=1)
        cc = torch.minimum(c.clamp_min(0), size.long() - 1)
        value = seg[(pos[:, 0], pos[:, 1], *cc.unbind(1))]
        value = torch.where(inside, value, torch.full_like(value, pad_label))
        score += w * (value == label).double()
    return score.to(torch.float32)


def _sample_nearest(seg: torch.Tensor, grid: torch.Tensor, pad_label: int) -> torch.Tensor:
    shifted = seg.float() - float(pad_label)
    out = F.grid_sample(shifted, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    return (out + float(pad_label)).round().to(seg.dtype)


def _may_reach_outside(grid: torch.Tensor, in_shape: Sequence[int]) -> bool:
    """False guarantees every linear kernel stays inside the input (|x| <= 1 - 1/n on every axis).

    The grid is affine in the output index, so its extremes lie at the corners of the output patch.
    """
    corners = grid
    for dim in range(1, grid.ndim - 1):
        ends = torch.tensor([0, grid.shape[dim] - 1], device=grid.device)
        corners = corners.index_select(dim, ends)
    sizes = torch.tensor(list(in_shape)[::-1], dtype=grid.dtype, device=grid.device)
    reach = corners.abs().amax(dim=tuple(range(grid.ndim - 1)))
    return bool((reach > 1 - 1 / sizes).any())
