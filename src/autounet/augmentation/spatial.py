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
_MAX_STACK_ELEMENTS = 2**26


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
    """The ``grid_sample`` grid ``(n, *out, d)`` for the samples ``idx`` (CPU indices)."""
    sub = SpatialParams(*(t[idx] for t in (params.rotate, params.scale, params.angles, params.scales)))
    theta = sampling_theta(affine_matrices(sub), in_shape, out_shape).to(device=device, dtype=torch.float32)
    return F.affine_grid(theta, [len(idx), 1, *out_shape], align_corners=False)


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
    warped = F.grid_sample(image.index_select(0, didx).float(), grid, mode="bilinear", padding_mode="zeros",
                           align_corners=False).to(image.dtype)
    img_out = img_out.index_copy(0, didx, warped)
    if seg is not None and seg_out is not None:
        labels = resample_labels(seg.index_select(0, didx), grid, mode=segmentation_mode)
        seg_out = seg_out.index_copy(0, didx, labels)
    return img_out, seg_out


def resample_labels(seg: torch.Tensor, grid: torch.Tensor, *, mode: str = "linear_onehot",
                    pad_label: int = PAD_LABEL) -> torch.Tensor:
    """Label-preserving resampling of integer labels ``(n, S, *in)`` at ``grid`` (normalised, x-first).

    ``nearest`` takes the nearest input voxel. ``linear_onehot`` interpolates every label's indicator
    (bi/tri)linearly and keeps the label with the highest score; where the best scores tie (a sample point
    exactly between two labels) the nearest neighbour's label wins. Outside the input counts as ``pad_label``.
    Every output value is therefore a value of the input or ``pad_label``; labels never mix.
    """
    nearest = _sample_nearest(seg, grid, pad_label)
    if mode == "nearest":
        return nearest
    if mode != "linear_onehot":
        msg = f"unknown segmentation resampling mode {mode!r}"
        raise ValueError(msg)
    labels = torch.unique(seg)
    if _may_reach_outside(grid, seg.shape[2:]) and not bool((labels == pad_label).any()):
        labels = torch.sort(torch.cat([labels, labels.new_tensor([pad_label])])).values
    if len(labels) == 1:
        return torch.full_like(nearest, int(labels[0]))
    best, winner, nn_score = _argmax_scores(seg, grid, labels, nearest, pad_label)
    use_nearest = nn_score >= best - _TIE_TOLERANCE
    return torch.where(use_nearest, nearest, winner)


def _sample_nearest(seg: torch.Tensor, grid: torch.Tensor, pad_label: int) -> torch.Tensor:
    shifted = seg.float() - float(pad_label)
    out = F.grid_sample(shifted, grid, mode="nearest", padding_mode="zeros", align_corners=False)
    return (out + float(pad_label)).round().to(seg.dtype)


def _may_reach_outside(grid: torch.Tensor, in_shape: Sequence[int]) -> bool:
    """False guarantees every linear kernel stays inside the input (|x| <= 1 - 1/n on every axis)."""
    sizes = torch.tensor(list(in_shape)[::-1], dtype=grid.dtype, device=grid.device)
    reach = grid.abs().amax(dim=tuple(range(grid.ndim - 1)))
    return bool((reach > 1 - 1 / sizes).any())


def _argmax_scores(seg: torch.Tensor, grid: torch.Tensor, labels: torch.Tensor, nearest: torch.Tensor,
                   pad_label: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Running max over label scores (in label chunks that bound memory), winner label, nearest label's score."""
    n, s = seg.shape[:2]
    out_shape = nearest.shape
    best = torch.full(out_shape, -math.inf, device=seg.device)
    winner = torch.empty_like(nearest)
    nn_score = torch.full(out_shape, -math.inf, device=seg.device)
    per_label = max(1, seg.numel())
    chunk = max(1, _MAX_STACK_ELEMENTS // per_label)
    for start in range(0, len(labels), chunk):
        part = labels[start:start + chunk]
        onehot = (seg[:, :, None] == part.view(1, 1, -1, *([1] * (seg.ndim - 2)))).float()
        is_pad = (part == pad_label).view(1, 1, -1, *([1] * (seg.ndim - 2)))
        onehot = onehot - is_pad.float()  # the padding label's indicator is 1 outside: sample (ind - 1), add 1
        scores = F.grid_sample(onehot.flatten(1, 2), grid, mode="bilinear", padding_mode="zeros",
                               align_corners=False)
        scores = scores.view(n, s, len(part), *out_shape[2:]) + is_pad.float()
        for k in range(len(part)):
            score = scores[:, :, k]
            better = score > best
            best = torch.where(better, score, best)
            winner = torch.where(better, part[k].to(winner.dtype), winner)
            nn_score = torch.where(nearest == part[k], score, nn_score)
    return best, winner, nn_score
