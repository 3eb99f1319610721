"""Sampling rules: forced-foreground count per batch, patch bounds, forced patch placement, DDP shares."""

from __future__ import annotations

import numpy as np
import pytest

from autounet.training.sampler import (
    choose_lower_corner,
    eligible_classes,
    forced_foreground_mask,
    patch_bounds,
    plan_batch,
    rank_batch_and_oversampling,
    split_box,
)


@pytest.mark.parametrize(("batch", "forced"), [(1, 0), (2, 1), (3, 1), (4, 1), (5, 2), (6, 2), (7, 2), (9, 3),
                                               (12, 4)])
def test_forced_count_per_batch_matches_reference_table(batch: int, forced: int) -> None:
    mask = forced_foreground_mask(batch, 0.33)
    assert int(mask.sum()) == forced
    # the forced samples are the last ones of the batch
    assert not mask[: batch - forced].any() and mask[batch - forced:].all()


def test_probabilistic_oversampling_rate(rng: np.random.Generator) -> None:
    mask = np.concatenate([forced_foreground_mask(8, 0.33, probabilistic=True, rng=rng) for _ in range(2000)])
    assert 0.31 < mask.mean() < 0.35


def test_plan_batch_forced_samples_contain_foreground(rng: np.random.Generator) -> None:
    shapes = {"a": (40, 40, 40), "b": (30, 50, 20)}
    locs = {"a": {1: np.array([[0, 5, 6, 7]]), 2: np.array([[0, 30, 31, 32]])}, "b": {1: np.array([[0, 2, 40, 3]])}}
    for _ in range(50):
        samples = plan_batch(["a", "b"], 6, patch=(16, 16, 16), need_to_pad=(8, 8, 8), shapes=shapes,
                             class_locations=locs, oversample=0.33, rng=rng)
        assert [s.forced for s in samples] == [False] * 4 + [True] * 2
        for s in samples[4:]:
            voxels = np.concatenate([v[:, 1:] for v in locs[s.case].values()])
            inside = [all(lo <= c < hi for c, (lo, hi) in zip(v, s.box)) for v in voxels]
            assert any(inside)


def test_patch_bounds_formula() -> None:
    # need_to_pad 10 on a 50-long axis with a 30 patch: lb = -5, ub = 50 + 5 + 0 - 30 = 25
    assert patch_bounds((50,), (30,), (10,)) == ([-5], [25])
    # odd padding: lb = -(7 // 2) = -4 (floor), ub = 50 + 3 + 1 - 30 = 24
    assert patch_bounds((50,), (30,), (7,)) == ([-4], [24])
    # too small an image: need_to_pad raised to patch - shape = 20
    assert patch_bounds((10,), (30,), (4,)) == ([-10], [-10])  # 10 + 10 + 0 - 30


def test_forced_corner_not_clamped_to_ub(rng: np.random.Generator) -> None:
    locs = {1: np.array([[0, 49]])}
    lower = choose_lower_corner((50,), (30,), (0,), forced=True, class_locations=locs, rng=rng)
    assert lower == [49 - 15]  # ub is 20, but forced corners are only clamped below


def test_forced_without_foreground_falls_back_to_random(rng: np.random.Generator) -> None:
    lowers = {choose_lower_corner((50,), (10,), (0,), forced=True, class_locations={1: np.zeros((0, 2))},
                                  rng=rng)[0] for _ in range(200)}
    assert min(lowers) >= 0 and max(lowers) <= 40 and len(lowers) > 20


def test_annotated_key_dropped_only_when_other_classes_exist() -> None:
    a = np.ones((3, 4), int)
    assert eligible_classes({(-1, 0, 1): a, 1: a}, has_ignore=True) == [1]
    assert eligible_classes({(-1, 0, 1): a, 1: np.zeros((0, 4))}, has_ignore=True) == [(-1, 0, 1)]


def test_region_keys_all_stay_eligible_without_ignore_label() -> None:
    a = np.ones((3, 4), int)
    regions = {(1, 2, 3): a, (2, 3): a, (3,): a}
    assert eligible_classes(regions) == [(1, 2, 3), (2, 3), (3,)]
    with_ignore = {(1, 2, 3): a, (2, 3): a, (0, 1, 2, 3): a}
    assert eligible_classes(with_ignore, has_ignore=True) == [(1, 2, 3), (2, 3)]


def test_ignore_label_random_patches_centred_on_annotated(rng: np.random.Generator) -> None:
    locs = {(-1, 0, 1): np.array([[0, 80]]), 1: np.array([[0, 80]])}
    for _ in range(20):
        lower = choose_lower_corner((100,), (10,), (0,), forced=False, class_locations=locs, rng=rng,
                                    has_ignore=True)
        assert lower == [75]


@pytest.mark.parametrize(("batch", "world"), [(2, 2), (5, 2), (7, 3), (12, 4)])
def test_ddp_split_keeps_global_forced_count(batch: int, world: int) -> None:
    sizes, forced = [], 0
    for rank in range(world):
        size, share = rank_batch_and_oversampling(batch, 0.33, rank, world)
        sizes.append(size)
        forced += int(forced_foreground_mask(size, share).sum())
    assert sum(sizes) == batch and max(sizes) - min(sizes) <= 1
    assert forced == int(forced_foreground_mask(batch, 0.33).sum())


def test_split_box_padding_and_empty() -> None:
    slices, pad, empty = split_box(((-3, 7), (5, 15)), (10, 12))
    assert slices == (slice(0, 7), slice(5, 12)) and pad == ((3, 0), (0, 3)) and not empty
    assert split_box(((20, 30),), (10,))[2]
