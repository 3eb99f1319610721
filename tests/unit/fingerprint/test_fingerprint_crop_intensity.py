"""Crop bounding boxes and the exact, bounded-memory intensity statistics."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.ndimage import binary_fill_holes

from autounet.fingerprint.crop import bbox_of, bbox_slices, nonzero_bbox, nonzero_mask
from autounet.fingerprint.intensity import (
    ChannelAccumulator,
    ChannelSample,
    Histogram,
    Moments,
    percentiles,
    sample_foreground,
    samples_per_case,
)


# ---- crop -------------------------------------------------------------------------------------------------------
def test_bbox_is_tight_and_half_open() -> None:
    mask = np.zeros((5, 6, 7), bool)
    mask[1, 2, 3] = mask[3, 4, 5] = True
    assert bbox_of(mask) == ((1, 4), (2, 5), (3, 6))
    assert bbox_of(np.zeros((2, 3), bool)) == ((0, 2), (0, 3))  # empty -> whole image


def test_bbox_uses_any_channel() -> None:
    images = np.zeros((2, 4, 4, 4), np.float32)
    images[0, 0, 0, 0] = 1
    images[1, 3, 3, 2] = -2
    assert nonzero_bbox(images) == ((0, 4), (0, 4), (0, 3))


def test_hole_filling_never_changes_the_bbox(rng: np.random.Generator) -> None:
    for _ in range(50):
        mask = rng.random((8, 9, 10)) < rng.uniform(0.02, 0.4)
        assert bbox_of(mask) == bbox_of(binary_fill_holes(mask))
    ring = np.zeros((1, 7, 7), np.float32)
    ring[0, 1:6, 1:6] = 1
    ring[0, 2:5, 2:5] = 0
    assert nonzero_mask(ring)[3, 3]  # the hole is filled
    assert bbox_slices(((1, 3), (0, 2))) == (slice(1, 3), slice(0, 2))


# ---- sampling ---------------------------------------------------------------------------------------------------
def _expand(sample: ChannelSample) -> np.ndarray:
    return np.repeat(sample.values, sample.counts)


@pytest.mark.parametrize(("n_fg", "n_samples"), [(50, 1000), (5000, 300)])
def test_samples_are_the_references_draws(rng: np.random.Generator, n_fg: int, n_samples: int) -> None:
    channels = [rng.normal(0, 1, n_fg).astype(np.float32), rng.integers(0, 20, n_fg).astype(np.float32)]
    ours = sample_foreground(channels, n_samples, seed=1234)
    rs = np.random.RandomState(1234)  # the reference: one generator per case, channels in order
    for channel, sample in zip(channels, ours, strict=True):
        expected = np.sort(rs.choice(channel, n_samples, replace=True))
        np.testing.assert_array_equal(_expand(sample), expected)
        assert sample.values.dtype == np.float32


def test_no_foreground_draws_nothing() -> None:
    out = sample_foreground([np.empty(0, np.float32)], 10)
    assert out[0].counts.size == 0 and samples_per_case(208) == 480769 and samples_per_case(3) == 33333333


# ---- statistics -------------------------------------------------------------------------------------------------
def _hist(values: np.ndarray) -> Histogram:
    v, c = np.unique(values, return_counts=True)
    return Histogram(v, v.copy(), c.astype(np.int64))


@pytest.mark.parametrize("kind", ["float", "int", "tiny"])
def test_percentiles_bit_identical_to_numpy(rng: np.random.Generator, kind: str) -> None:
    data = {"float": rng.lognormal(3, 1, 20001).astype(np.float32),
            "int": rng.integers(-1000, 3000, 9999).astype(np.float32),
            "tiny": np.array([5.0, 1.0], np.float32)}[kind]
    qs = (0.5, 50.0, 99.5)
    values, bounds = percentiles(_hist(data), qs)
    expected = np.percentile(data, qs)
    assert values == [float(x) for x in expected]  # exact, not approximately
    assert bounds == [0.0, 0.0, 0.0]


def test_moments_merge_equals_direct(rng: np.random.Generator) -> None:
    parts = [rng.normal(i, i + 1, 1000 + 37 * i) for i in range(5)]
    merged = Moments()
    for p in parts:
        merged = merged.merge(Moments.of(np.sort(p), np.ones(p.size, np.int64)))
    allv = np.concatenate(parts)
    assert merged.n == allv.size
    assert merged.mean == pytest.approx(allv.mean(), rel=1e-12)
    assert np.sqrt(merged.m2 / merged.n) == pytest.approx(allv.std(), rel=1e-12)
    assert (merged.minimum, merged.maximum) == (allv.min(), allv.max())


def test_accumulator_exact_without_compaction(rng: np.random.Generator) -> None:
    acc = ChannelAccumulator(max_bins=10_000)
    chunks = [rng.integers(0, 500, 3000).astype(np.float32) for _ in range(7)]
    for c in chunks:
        v, n = np.unique(c, return_counts=True)
        acc.add(ChannelSample(v, n))
    props, bounds = acc.finalize()
    allv = np.concatenate(chunks)
    p0, med, p99 = np.percentile(allv, (0.5, 50, 99.5))
    assert (props.percentile_00_5, props.median, props.percentile_99_5) == (p0, med, p99)
    assert props.mean == pytest.approx(float(allv.astype(np.float64).mean()), rel=1e-12)
    assert props.std == pytest.approx(float(allv.astype(np.float64).std()), rel=1e-12)
    assert acc.compactions == 0 and set(bounds.values()) == {0.0}


def test_compaction_bounds_memory_and_reports_error(rng: np.random.Generator) -> None:
    acc = ChannelAccumulator(max_bins=256)
    chunks = [rng.normal(100, 30, 2000).astype(np.float32) for _ in range(20)]
    for c in chunks:
        v, n = np.unique(c, return_counts=True)
        acc.add(ChannelSample(v, n))
        assert acc.histogram is None or acc.histogram.counts.size <= 256
    props, bounds = acc.finalize()
    assert acc.compactions > 0 and acc.histogram.counts.size <= 256
    allv = np.concatenate(chunks)
    exact = dict(zip(("percentile_00_5", "median", "percentile_99_5"), np.percentile(allv, (0.5, 50, 99.5)),
                     strict=True))
    ours = {"percentile_00_5": props.percentile_00_5, "median": props.median,
            "percentile_99_5": props.percentile_99_5}
    for key, value in ours.items():
        assert abs(value - exact[key]) <= bounds[key] + 1e-6, key
        assert bounds[key] > 0
    # min, max, mean and std stay exact
    assert (props.min, props.max) == (float(allv.min()), float(allv.max()))
    assert props.mean == pytest.approx(float(allv.astype(np.float64).mean()), rel=1e-12)


def test_empty_channel_finalizes_to_none() -> None:
    assert ChannelAccumulator().finalize() is None


@pytest.mark.parametrize("n", [1, 2, 7, 1024, 1025, 2**31 + 5, 2**33 + 1])
def test_chunked_draws_equal_one_large_call(n: int) -> None:
    from autounet.fingerprint.intensity import randint_chunks

    ours = np.random.RandomState(1234)
    ref = np.random.RandomState(1234)
    for size in (5000, 3):  # successive calls continue the same stream (as channels do)
        got = np.concatenate(list(randint_chunks(ours, n, size, chunk=777)))
        np.testing.assert_array_equal(got, ref.randint(0, n, size=size))
