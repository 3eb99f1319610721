"""Foreground intensity statistics with bounded memory.

The reference draws ``num_samples = int(1e8 // n_cases)`` foreground voxels per case and channel, with replacement,
from ``numpy.random.RandomState(1234)`` (a fresh generator per case, used across the channels in order), then
concatenates all samples (up to 1e8 values per channel) and takes mean/median/std/min/max/percentiles.

We draw the very same samples (same generator, same calls) but keep each case's sample as a weighted histogram
(distinct value -> count) and merge histograms across cases. Order statistics of the concatenation are then read
off the cumulative counts, interpolated exactly as ``numpy.percentile(..., method="linear")`` does, and mean/std
come from exactly merged moments (Chan et al.) in float64. Memory is bounded by the number of distinct sampled
intensities, capped at ``max_bins`` per channel: beyond the cap, neighbouring bins are merged pairwise and each
bin keeps its value range, so every percentile carries a known error bound (the width of the bin it falls in);
min, max, mean and std stay exact. Integer-valued images (CT, most MRI) never reach the cap.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np

from autounet.schemas.fingerprint import IntensityProperties

TOTAL_SAMPLES = 1e8  # the reference writes 10e7, which is 1e8
SEED = 1234
PERCENTILES = (0.5, 50.0, 99.5)
DEFAULT_MAX_BINS = 1 << 20
_FLOAT32 = np.dtype(np.float32)


def samples_per_case(num_cases: int) -> int:
    """Foreground samples per case and channel: ``int(1e8 // num_cases)``."""
    return int(TOTAL_SAMPLES // num_cases)


@dataclass
class Histogram:
    """A weighted multiset of intensities: sorted ``lo`` values with ``counts``; ``hi`` is each bin's upper value
    (equal to ``lo`` until bins are merged by compaction)."""

    lo: np.ndarray
    hi: np.ndarray
    counts: np.ndarray

    @classmethod
    def empty(cls, dtype: np.dtype = _FLOAT32) -> Histogram:
        return cls(np.empty(0, dtype), np.empty(0, dtype), np.empty(0, np.int64))

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    @property
    def exact(self) -> bool:
        return bool(np.array_equal(self.lo, self.hi))


@dataclass
class Moments:
    """Count, mean, sum of squared deviations, min and max (exactly mergeable)."""

    n: int = 0
    mean: float = 0.0
    m2: float = 0.0
    minimum: float = np.inf
    maximum: float = -np.inf

    @classmethod
    def of(cls, values: np.ndarray, counts: np.ndarray) -> Moments:
        if counts.size == 0:
            return cls()
        v = values.astype(np.float64)
        n = int(counts.sum())
        mean = float(np.dot(v, counts) / n)
        m2 = float(np.dot((v - mean) ** 2, counts))
        return cls(n, mean, m2, float(v[0]), float(v[-1]))

    def merge(self, other: Moments) -> Moments:
        if other.n == 0:
            return self
        if self.n == 0:
            return other
        n = self.n + other.n
        delta = other.mean - self.mean
        mean = self.mean + delta * other.n / n
        m2 = self.m2 + other.m2 + delta * delta * self.n * other.n / n
        return Moments(n, mean, m2, min(self.minimum, other.minimum), max(self.maximum, other.maximum))


@dataclass(frozen=True)
class ChannelSample:
    """One case's sampled foreground intensities of one channel, as distinct values (sorted) and counts."""

    values: np.ndarray
    counts: np.ndarray

    @property
    def moments(self) -> Moments:
        return Moments.of(self.values, self.counts)


def randint_chunks(rs: np.random.RandomState, n: int, size: int, *, chunk: int = 1 << 22) -> Iterator[np.ndarray]:
    """``rs.randint(0, n, size)`` in chunks of at most ``chunk`` values (memory independent of ``size``).

    numpy's legacy bounded integers carry no buffer between calls (32-bit masked rejection, or 64-bit draws), so
    successive calls produce exactly the stream of one large call; the unit tests check this.
    """
    for start in range(0, size, chunk):
        yield rs.randint(0, n, size=min(chunk, size - start))


def sample_foreground(channels: Sequence[np.ndarray], num_samples: int, *, seed: int = SEED
                      ) -> tuple[ChannelSample, ...]:
    """Sample ``num_samples`` foreground values per channel exactly as the reference does, as histograms.

    Args:
        channels: per channel, the foreground voxel values in C order of the cropped image (all equally long).
        num_samples: samples per channel.
        seed: the generator seed (a fresh ``RandomState`` per case, shared by the channels in order).
    """
    rs = np.random.RandomState(seed)
    out = []
    for values in channels:
        n = values.size
        if n == 0:
            out.append(ChannelSample(values[:0].copy(), np.empty(0, np.int64)))
            continue
        if num_samples < n:  # what RandomState.choice(values, num_samples) picks, as distinct values + counts
            idx = rs.randint(0, n, size=num_samples)
            uniq, counts = np.unique(values[idx], return_counts=True)
        else:  # multiplicity per voxel, accumulated chunk by chunk (memory independent of num_samples)
            multiplicity = np.zeros(n, np.int64)
            for idx in randint_chunks(rs, n, num_samples):
                multiplicity += np.bincount(idx, minlength=n)
            uniq, inverse = np.unique(values, return_inverse=True)
            counts = np.bincount(inverse, weights=multiplicity, minlength=uniq.size)
            counts = np.rint(counts).astype(np.int64)
            keep = counts > 0
            uniq, counts = uniq[keep], counts[keep]
        out.append(ChannelSample(uniq, counts.astype(np.int64)))
    return tuple(out)


@dataclass
class ChannelAccumulator:
    """Merges per-case samples of one channel with bounded memory."""

    max_bins: int = DEFAULT_MAX_BINS
    histogram: Histogram | None = None
    moments: Moments = field(default_factory=Moments)
    _pending: list[ChannelSample] = field(default_factory=list)
    _pending_size: int = 0
    compactions: int = 0

    def add(self, sample: ChannelSample) -> None:
        if sample.counts.size == 0:
            return
        self.moments = self.moments.merge(sample.moments)
        self._pending.append(sample)
        self._pending_size += sample.counts.size
        if self._pending_size >= self.max_bins:
            self._flush()

    def _flush(self) -> None:
        """Merge pending exact samples into the histogram, keeping bins sorted and disjoint."""
        if not self._pending:
            return
        values = np.concatenate([s.values for s in self._pending])
        counts = np.concatenate([s.counts for s in self._pending])
        self._pending, self._pending_size = [], 0
        order = np.argsort(values, kind="stable")
        values, counts = values[order], counts[order]
        starts = np.flatnonzero(np.r_[True, values[1:] != values[:-1]])
        new = Histogram(values[starts], values[starts].copy(), np.add.reduceat(counts, starts))
        self.histogram = new if self.histogram is None else _merge(self.histogram, new)
        while self.histogram.counts.size > self.max_bins:
            self.histogram = _compact(self.histogram)
            self.compactions += 1

    def finalize(self) -> tuple[IntensityProperties, dict[str, float]] | None:
        """Statistics and the percentile error bounds (0 when exact); None when no foreground was seen."""
        self._flush()
        if self.histogram is None or self.moments.n == 0:
            return None
        h, m = self.histogram, self.moments
        values, bounds = percentiles(h, PERCENTILES)
        props = IntensityProperties(
            mean=m.mean, median=values[1], std=float(np.sqrt(m.m2 / m.n)), min=m.minimum, max=m.maximum,
            percentile_99_5=values[2], percentile_00_5=values[0])
        return props, {"percentile_00_5": bounds[0], "median": bounds[1], "percentile_99_5": bounds[2]}


def _merge(old: Histogram, new: Histogram) -> Histogram:
    """Merge exact values ``new`` into ``old`` (disjoint bins): a value inside a merged bin's range joins that bin,
    so bins stay disjoint and every order statistic lies inside the bin its rank falls in."""
    idx = np.searchsorted(old.lo, new.lo, side="right") - 1
    inside = (idx >= 0) & (new.lo <= old.hi[np.maximum(idx, 0)])
    counts = old.counts.copy()
    np.add.at(counts, idx[inside], new.counts[inside])
    lo = np.concatenate([old.lo, new.lo[~inside]])
    hi = np.concatenate([old.hi, new.hi[~inside]])
    counts = np.concatenate([counts, new.counts[~inside]])
    order = np.argsort(lo, kind="stable")
    return Histogram(lo[order], hi[order], counts[order])


def _compact(h: Histogram) -> Histogram:
    """Merge neighbouring bins pairwise (keeps each merged bin's value range)."""
    n = h.counts.size
    even = n - n % 2
    lo = h.lo[0:even:2]
    hi = h.hi[1:even:2]
    counts = h.counts[0:even:2] + h.counts[1:even:2]
    if n % 2:
        lo, hi, counts = np.r_[lo, h.lo[-1:]], np.r_[hi, h.hi[-1:]], np.r_[counts, h.counts[-1:]]
    return Histogram(lo.astype(h.lo.dtype), hi.astype(h.hi.dtype), counts)


def percentiles(h: Histogram, qs: Sequence[float]) -> tuple[list[float], list[float]]:
    """``numpy.percentile(expanded, qs)`` (linear method, same arithmetic) from a histogram, plus error bounds.

    The reference's sample array has the images' dtype (float32); numpy takes the difference of the two
    neighbouring order statistics in that dtype and interpolates in float64. We do the same, so results are
    bit-identical while the histogram is exact.
    """
    n = h.total
    cum = np.cumsum(h.counts)
    q = np.asarray(qs, dtype=np.float64) / 100
    virtual = (n - 1) * q
    prev = np.floor(virtual)
    nxt = prev + 1
    above = virtual >= n - 1
    prev[above], nxt[above] = n - 1, n - 1
    prev_i, next_i = prev.astype(np.int64), nxt.astype(np.int64)
    gamma = virtual - prev
    bins_a = np.searchsorted(cum, prev_i, side="right")
    bins_b = np.searchsorted(cum, next_i, side="right")
    a, b = h.lo[bins_a], h.lo[bins_b]
    diff = b - a  # in the data dtype, as numpy does
    result = a + diff * gamma
    upper = gamma >= 0.5
    result[upper] = (b - diff * (1 - gamma))[upper]
    bound = np.maximum(h.hi[bins_a].astype(np.float64) - a, h.hi[bins_b].astype(np.float64) - b)
    return [float(r) for r in result], [float(x) for x in bound]
