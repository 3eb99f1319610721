"""Cascade extra channels: the previous stage's segmentation as one-hot input, and its perturbations.

Only used by cascade configurations (facts §5.4 step 14, §5.10): the previous stage's segmentation arrives as
segmentation channel 1, is one-hot encoded over the foreground labels and appended to the image channels; then,
per sample, random morphological operators and the removal of random small connected components make the
network robust to the previous stage's mistakes.

Morphology is batched: every (sample, label) gets its own structuring-element radius and operator, and dilation
is an FFT convolution with a per-sample ball, so one step processes the whole batch. Connected components are
labelled on the CPU with ``cc3d`` in one call for all selected (sample, label) volumes.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import cc3d
import numpy as np
import torch

from autounet.augmentation import _sampling
from autounet.augmentation.config import CascadeConfig

DILATION, EROSION, CLOSING, OPENING = 0, 1, 2, 3
OPERATORS = ("dilation", "erosion", "closing", "opening")


def move_seg_to_onehot(image: torch.Tensor, seg: torch.Tensor, labels: Sequence[int], *,
                       source_channel: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Append the one-hot of ``seg[:, source_channel]`` over ``labels`` to ``image``; drop that seg channel."""
    prev = seg[:, source_channel]
    lab = torch.tensor(list(labels), dtype=prev.dtype, device=prev.device)
    onehot = (prev[:, None] == lab.view(1, -1, *([1] * (prev.ndim - 1)))).to(image.dtype)
    keep = [c for c in range(seg.shape[1]) if c != source_channel]
    return torch.cat([image, onehot], dim=1), seg[:, keep]


# ---- random binary operators -------------------------------------------------------------------------------------

@dataclass(frozen=True)
class BinaryOperatorParams:
    """Per sample: ``apply (B,)``; per step ``k`` of a random label order: ``order (B, L)`` label index,
    ``selected (B, L)`` bool, ``operator (B, L)`` in 0..3 (dilation, erosion, closing, opening), ``radius (B, L)``."""

    apply: torch.Tensor
    order: torch.Tensor
    selected: torch.Tensor
    operator: torch.Tensor
    radius: torch.Tensor


def make_binary_operator_params(config: CascadeConfig, batch_size: int, n_labels: int,
                                generator: torch.Generator) -> BinaryOperatorParams:
    """Draw operators, radii ``U(radius)`` and the label order for every sample."""
    order = torch.argsort(torch.rand((batch_size, n_labels), generator=generator), dim=1)
    return BinaryOperatorParams(
        apply=_sampling.bernoulli(config.p_binary_operator, (batch_size,), generator),
        order=order,
        selected=_sampling.bernoulli(config.p_per_label_binary_operator, (batch_size, n_labels), generator),
        operator=torch.randint(0, 4, (batch_size, n_labels), generator=generator),
        radius=_sampling.uniform(config.radius, (batch_size, n_labels), generator),
    )


def ball_offsets(radius: float, ndim: int) -> np.ndarray:
    """Boolean structuring element: integer offsets within Euclidean distance ``radius`` (odd, centred)."""
    r = int(np.floor(radius))
    grid = np.indices((2 * r + 1,) * ndim) - r
    return (grid ** 2).sum(axis=0) <= radius ** 2


def ball_kernels(radius: torch.Tensor, ndim: int) -> torch.Tensor:
    """``(n, K, ..., K)`` float balls with per-row radius, all centred in the largest size ``K``."""
    rmax = int(torch.floor(radius.max()).item()) if len(radius) else 0
    grid = torch.stack(torch.meshgrid(*[torch.arange(-rmax, rmax + 1, dtype=torch.float64)] * ndim,
                                      indexing="ij")).pow(2).sum(0)
    return (grid[None] <= radius.to(torch.float64).view(-1, *([1] * ndim)) ** 2).float()


def dilate(mask: torch.Tensor, radius: torch.Tensor) -> torch.Tensor:
    """Binary dilation of ``mask (n, *spatial)`` by a ball of per-row radius; zero outside the array."""
    if mask.shape[0] == 0:
        return mask
    ndim = mask.ndim - 1
    kernels = ball_kernels(radius, ndim).to(mask.device)
    k = kernels.shape[1]
    if k == 1:
        return mask.clone()
    spatial = mask.shape[1:]
    size = [n + k - 1 for n in spatial]
    dims = tuple(range(1, ndim + 1))
    f = torch.fft.rfftn(mask.float(), s=size, dim=dims) * torch.fft.rfftn(kernels, s=size, dim=dims)
    full = torch.fft.irfftn(f, s=size, dim=dims)
    half = k // 2
    same = full[(slice(None), *[slice(half, half + n) for n in spatial])]
    return same > 0.5


def _two_stage(mask: torch.Tensor, operator: torch.Tensor, radius: torch.Tensor) -> torch.Tensor:
    """Apply per-row operators: erosion = NOT dilate(NOT x); closing = erode(dilate); opening = dilate(erode)."""
    view = (-1, *([1] * (mask.ndim - 1)))
    dev = mask.device
    first_inv = ((operator == EROSION) | (operator == OPENING)).to(dev).view(view)
    out = dilate(mask ^ first_inv, radius) ^ first_inv
    second = ((operator == CLOSING) | (operator == OPENING))
    if bool(second.any()):
        rows = second.nonzero(as_tuple=True)[0]
        drows = rows.to(dev)
        inv = (operator[rows] == CLOSING).to(dev).view(view)
        out[drows] = dilate(out[drows] ^ inv, radius[rows]) ^ inv
    return out


def apply_binary_operator(image: torch.Tensor, params: BinaryOperatorParams, *, first_channel: int) -> torch.Tensor:
    """Perturb the one-hot channels ``image[:, first_channel:]`` step by step in each sample's label order.

    Voxels a label gains are removed from the sample's other one-hot channels.
    """
    onehot = image[:, first_channel:] > 0.5
    n_labels = onehot.shape[1]
    for step in range(n_labels):
        active = params.apply & params.selected[:, step]
        rows = active.nonzero(as_tuple=True)[0]
        if len(rows) == 0:
            continue
        drows = rows.to(image.device)
        labels = params.order[rows, step].to(image.device)
        before = onehot[drows, labels]
        after = _two_stage(before, params.operator[rows, step], params.radius[rows, step])
        added = after & ~before
        sub = onehot[drows] & ~added[:, None]
        sub[torch.arange(len(rows), device=image.device), labels] = after
        onehot[drows] = sub
    out = image.clone()
    out[:, first_channel:] = onehot.to(image.dtype)
    return out


# ---- random connected-component removal ------------------------------------------------------------------------

@dataclass(frozen=True)
class RemoveComponentParams:
    """``apply (B,)``; ``selected (B, L)`` labels to treat; ``pick (B, L)`` in [0, 1): which eligible component."""

    apply: torch.Tensor
    selected: torch.Tensor
    pick: torch.Tensor


def make_remove_component_params(config: CascadeConfig, batch_size: int, n_labels: int,
                                 generator: torch.Generator) -> RemoveComponentParams:
    """Draw samples, labels and the (uniform) choice among each label's eligible components."""
    return RemoveComponentParams(
        apply=_sampling.bernoulli(config.p_remove_component, (batch_size,), generator),
        selected=_sampling.bernoulli(config.p_per_label_remove_component, (batch_size, n_labels), generator),
        pick=torch.rand((batch_size, n_labels), generator=generator, dtype=torch.float64),
    )


def label_components(masks: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Label the fully connected components of every mask ``(n, *spatial)`` in one ``cc3d`` call.

    Returns the component image ``(n, *spatial)`` (ids unique across masks, 0 = background), each component's
    size and the mask it belongs to (both indexed by id - 1).
    """
    n, spatial = masks.shape[0], masks.shape[1:]
    connectivity: Literal[8, 26] = 26 if len(spatial) == 3 else 8
    stacked = np.zeros((n * (spatial[0] + 1), *spatial[1:]), dtype=bool)
    view = stacked.reshape(n, spatial[0] + 1, *spatial[1:])
    view[:, : spatial[0]] = masks
    labelled = cc3d.connected_components(stacked, connectivity=connectivity)
    labelled = labelled.reshape(n, spatial[0] + 1, *spatial[1:])[:, : spatial[0]]
    counts = np.bincount(labelled.ravel())[1:]
    owner = np.zeros(len(counts), dtype=np.int64)
    flat = labelled.reshape(n, -1)
    for_ids = np.broadcast_to(np.arange(n)[:, None], flat.shape)
    fg = flat > 0
    owner[flat[fg] - 1] = for_ids[fg]
    return np.ascontiguousarray(labelled), counts, owner


def apply_remove_component(image: torch.Tensor, params: RemoveComponentParams, *, first_channel: int,
                           max_fraction: float) -> torch.Tensor:
    """Remove one random component smaller than ``max_fraction`` of the patch from each selected label channel."""
    pairs = (params.apply[:, None] & params.selected).nonzero()
    if len(pairs) == 0:
        return image
    b, c = pairs[:, 0], pairs[:, 1] + first_channel
    masks = (image[b.to(image.device), c.to(image.device)] > 0.5).cpu().numpy()
    labelled, sizes, owner = label_components(masks)
    volume = int(np.prod(masks.shape[1:]))
    eligible = np.nonzero(sizes < max_fraction * volume)[0]  # component id - 1, ascending
    by_pair = owner[eligible]
    counts = np.bincount(by_pair, minlength=len(pairs))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    pick = params.pick[pairs[:, 0], pairs[:, 1]].numpy()
    has = counts > 0
    chosen = np.full(len(pairs), -1, dtype=np.int64)
    order = np.argsort(by_pair, kind="stable")
    offsets = np.minimum((pick[has] * counts[has]).astype(np.int64), counts[has] - 1)
    chosen[has] = eligible[order][starts[has] + offsets] + 1
    remove = labelled == chosen.reshape(-1, *([1] * (labelled.ndim - 1)))
    if not remove.any():
        return image
    out = image.clone()
    keep = torch.from_numpy(~remove).to(device=image.device, dtype=image.dtype)
    out[b.to(image.device), c.to(image.device)] = image[b.to(image.device), c.to(image.device)] * keep
    return out
