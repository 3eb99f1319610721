"""Per-sample random draws from an explicit ``torch.Generator`` (parameters only; never image-sized tensors).

Every draw is a small CPU tensor with one entry per sample (and channel/axis where the transform needs it), so
each sample of a batch gets its own independent parameters and a seeded generator reproduces them exactly.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

Shape = Sequence[int]


def bernoulli(p: float, shape: Shape, generator: torch.Generator) -> torch.Tensor:
    """Boolean tensor, each entry True with probability ``p`` (``rand < p``, as the reference decides)."""
    return torch.rand(tuple(shape), generator=generator, dtype=torch.float64) < p


def uniform(bounds: tuple[float, float], shape: Shape, generator: torch.Generator) -> torch.Tensor:
    """Float64 tensor of independent draws from ``U(lo, hi)`` (``lo`` everywhere when ``lo == hi``)."""
    lo, hi = float(bounds[0]), float(bounds[1])
    return lo + (hi - lo) * torch.rand(tuple(shape), generator=generator, dtype=torch.float64)


def two_sided(bounds: tuple[float, float], shape: Shape, generator: torch.Generator) -> torch.Tensor:
    """The reference's factor sampler for brightness, contrast and gamma ("BG contrast").

    For a range around 1, each draw is below 1 (``U(lo, 1)``) or above 1 (``U(1, hi)``) with probability 0.5
    each, so shrinking and enlarging factors are equally likely whatever the asymmetry of the range. A range
    entirely on one side of 1 is sampled uniformly.
    """
    lo, hi = float(bounds[0]), float(bounds[1])
    if not lo < 1.0 < hi:
        return uniform((lo, hi), shape, generator)
    below = bernoulli(0.5, shape, generator)
    u = torch.rand(tuple(shape), generator=generator, dtype=torch.float64)
    return torch.where(below, lo + (1.0 - lo) * u, 1.0 + (hi - 1.0) * u)


def seed(generator: torch.Generator) -> int:
    """A 63-bit seed for a device-side generator (noise fields are generated where the batch lives)."""
    return int(torch.randint(0, 2**63 - 1, (1,), generator=generator, dtype=torch.int64).item())


def selected(mask: torch.Tensor, device: torch.device | str) -> torch.Tensor:
    """Indices of the True entries of a CPU mask, as a long tensor on ``device`` (for index_select/index_copy)."""
    return mask.nonzero(as_tuple=True)[0].to(device)
