"""Unit tests of the planning rule modules, with expectations derived by hand from facts §3."""

from __future__ import annotations

import math

import numpy as np
import pytest

from autounet.errors import ConfigError
from autounet.planning.batch_size import batch_size
from autounet.planning.memory import feature_map_size, stage_sizes
from autounet.planning.normalization import normalization_components, scheme_for_channel, use_mask_for_norm
from autounet.planning.patch_size import (
    axis_to_reduce,
    exceeds_budget,
    initial_patch_size,
    reduce_patch,
    shrink_to_budget,
)
from autounet.planning.spacing import fullres_target_spacing, median_resampled_shape, resampled_shape, transpose_for
from autounet.planning.topology import pad_shape, pool_and_conv_props


# ---- spacing ----------------------------------------------------------------------------------------------------
def test_target_is_median_without_anisotropy() -> None:
    spacings = np.array([[1.0, 0.8, 0.8], [2.0, 0.9, 0.9], [1.5, 0.7, 0.7]])
    shapes = np.array([[100, 200, 200]] * 3)
    d = fullres_target_spacing(spacings, shapes)
    assert d.target == (1.5, 0.8, 0.8)
    assert d.worst_axis == 0 and not d.anisotropic_spacing and d.corrected_value is None


def test_anisotropy_rule_uses_tenth_percentile() -> None:
    # ACDC-like (facts 3.15): median z spacing 10 > 3 x 1.5625 and median z size 10 x 3 < 216 -> 10th percentile
    spacings = np.array([[10, 1.5625, 1.5625]] * 60 + [[5, 1.5625, 1.5625]] * 40, dtype=float)
    shapes = np.array([[10, 256, 216]] * 60 + [[20, 256, 216]] * 40)
    d = fullres_target_spacing(spacings, shapes)
    assert d.anisotropic_spacing and d.anisotropic_voxels
    assert d.target == (5.0, 1.5625, 1.5625) and d.corrected_value == 5.0


def test_anisotropy_needs_both_conditions() -> None:
    spacings = np.array([[10, 1.0, 1.0]] * 5, dtype=float)
    shapes = np.array([[100, 200, 200]] * 5)  # 100 x 3 = 300 is not < 200
    d = fullres_target_spacing(spacings, shapes)
    assert d.anisotropic_spacing and not d.anisotropic_voxels and d.target == (10.0, 1.0, 1.0)


def test_anisotropy_clamps_to_other_axes_plus_epsilon() -> None:
    # 10th percentile (0.5) is finer than the in-plane spacing 1.0 -> max(1.0, 0.5) + 1e-5
    spacings = np.array([[0.5, 1.0, 1.0]] * 3 + [[6.0, 1.0, 1.0]] * 17, dtype=float)
    shapes = np.array([[10, 300, 300]] * 20)
    d = fullres_target_spacing(spacings, shapes)
    assert d.target[0] == pytest.approx(1.0 + 1e-5, abs=1e-12)


def test_override_is_verbatim() -> None:
    d = fullres_target_spacing(np.ones((3, 3)), np.ones((3, 3)) * 50, override=(2.0, 0.5, 0.5))
    assert d.target == (2.0, 0.5, 0.5) and d.overridden


@pytest.mark.parametrize(("target", "forward", "backward"), [
    ((1.0, 1.0, 1.0), (0, 1, 2), (0, 1, 2)),       # ties: first axis
    ((0.8, 5.0, 0.8), (1, 0, 2), (1, 0, 2)),
    ((0.8, 0.8, 3.0), (2, 0, 1), (1, 2, 0)),
])
def test_transpose(target: tuple[float, ...], forward: tuple[int, ...], backward: tuple[int, ...]) -> None:
    assert transpose_for(target) == (forward, backward)


def test_resampled_shape_rounds_half_to_even() -> None:
    assert resampled_shape((5, 10, 10), (1.0, 1.0, 1.0), (2.0, 1.0, 1.0)) == (2, 10, 10)  # 2.5 -> 2
    assert resampled_shape((7, 10, 10), (1.0, 1.0, 1.0), (2.0, 1.0, 1.0)) == (4, 10, 10)  # 3.5 -> 4
    assert median_resampled_shape(np.array([[1.0] * 3, [2.0] * 3]), np.array([[10] * 3, [10] * 3]),
                                  (1.0, 1.0, 1.0)).tolist() == [15.0, 15.0, 15.0]


# ---- topology ---------------------------------------------------------------------------------------------------
def test_topology_isotropic_hippocampus() -> None:
    # 36,50,35 -> 18,25,18 -> 9,13,9 -> 5,7,5: three pools per axis, patch padded to multiples of 8
    t = pool_and_conv_props((1.0, 1.0, 1.0), (36, 50, 35))
    assert t.pools_per_axis == (3, 3, 3) and t.divisor == (8, 8, 8)
    assert t.patch_size == (40, 56, 40)
    assert t.strides == ((1, 1, 1), (2, 2, 2), (2, 2, 2), (2, 2, 2))
    assert t.kernel_sizes == ((3, 3, 3),) * 4 and t.n_stages == 4


def test_topology_anisotropic_2d_kernels_and_strides() -> None:
    # spacing (4, 1): axis 0 joins once its spacing is within 2x of axis 1; its kernel becomes 3 at that point
    t = pool_and_conv_props((4.0, 1.0), (16, 64))
    assert t.strides == ((1, 1), (1, 2), (1, 2), (2, 2), (2, 2))
    assert t.kernel_sizes == ((1, 3), (1, 3), (3, 3), (3, 3), (3, 3))
    assert t.pools_per_axis == (2, 4) and t.patch_size == (16, 64)


def test_topology_lone_axis_needs_three_times_min_size() -> None:
    t = pool_and_conv_props((1.0, 4.0), (10, 64))  # only axis 0 is fine enough and 10 < 12
    assert t.n_stages == 1 and t.kernel_sizes == ((3, 3),) and t.divisor == (1, 1)


def test_topology_acdc_like() -> None:
    t = pool_and_conv_props((5.0, 1.5625, 1.5625), (20, 256, 216))
    assert t.strides[1:] == ((1, 2, 2), (2, 2, 2), (2, 2, 2), (1, 2, 2), (1, 2, 2))
    assert t.kernel_sizes[0] == (1, 3, 3) and all(k == (3, 3, 3) for k in t.kernel_sizes[1:])
    assert t.patch_size == (20, 256, 224)


def test_pad_shape_handles_fractions_like_the_reference() -> None:
    assert pad_shape((35.5, 50, 48), (8, 8, 8)) == (40, 56, 48)
    assert pad_shape((35.5, 7), (1, 1)) == (36, 7)


# ---- memory -----------------------------------------------------------------------------------------------------
def test_stage_sizes_floor_divide() -> None:
    assert stage_sizes((9, 7), ((1, 1), (2, 2), (2, 1))) == [(9, 7), (4, 3), (2, 3)]


def test_plain_estimate_by_hand() -> None:
    # encoder 2*32*64 + 2*64*16; decoder 2*32*64 + 32*64 (transposed conv); output 3*64
    got = feature_map_size("plain_unet", patch_size=(8, 8), strides=((1, 1), (2, 2)), features_per_stage=(32, 64),
                           blocks_per_stage=(2, 2), convs_per_stage_decoder=(2,), num_outputs=3)
    assert got == 4096 + 2048 + 4096 + 2048 + 192


def test_resenc_estimate_by_hand() -> None:
    # stem 32*64; stage 0: 1 block 2*32*64 (identity skip); stage 1: 3 blocks 2*64*16 each + projection 64*16;
    # decoder 1*32*64 + 32*64; output 3*64
    got = feature_map_size("resenc_unet", patch_size=(8, 8), strides=((1, 1), (2, 2)), features_per_stage=(32, 64),
                           blocks_per_stage=(1, 3), convs_per_stage_decoder=(1,), num_outputs=3)
    assert got == 2048 + 4096 + 3 * 2048 + 1024 + 2048 + 2048 + 192


def test_resenc_estimates_quoted_in_reference_source() -> None:
    # values printed in the reference planner's own comments (with deep supervision)
    common = {"convs_per_stage_decoder": (1,) * 5, "num_outputs": 3, "deep_supervision": True}
    got = feature_map_size("resenc_unet", patch_size=(128,) * 3, strides=((1, 1, 1),) + ((2, 2, 2),) * 5,
                           features_per_stage=(32, 64, 128, 256, 320, 320), blocks_per_stage=(1, 3, 4, 6, 6, 6),
                           **common)
    assert got == 558_319_104
    got = feature_map_size("resenc_unet", patch_size=(512, 512), strides=((1, 1),) + ((2, 2),) * 6,
                           features_per_stage=(32, 64, 128, 256, 512, 512, 512),
                           blocks_per_stage=(1, 3, 4, 6, 6, 6, 6), convs_per_stage_decoder=(1,) * 6, num_outputs=3,
                           deep_supervision=True)
    assert got == 129_793_792


def test_unknown_network_has_no_estimate() -> None:
    with pytest.raises(ValueError, match="no VRAM estimate"):
        feature_map_size("vit", patch_size=(8, 8), strides=((1, 1),), features_per_stage=(32,),
                         blocks_per_stage=(1,), convs_per_stage_decoder=(), num_outputs=2)


# ---- patch size -------------------------------------------------------------------------------------------------
def test_initial_patch_has_aspect_of_inverse_spacing() -> None:
    p = initial_patch_size((5.0, 1.0, 1.0), (1000, 1000, 1000))
    edge = 256 / (0.2 ** (1 / 3))
    assert p == (round(0.2 * edge), round(edge), round(edge))
    assert math.prod(p) == pytest.approx(256 ** 3, rel=0.01)


def test_initial_patch_clipped_to_fractional_median() -> None:
    assert initial_patch_size((1.0, 1.0, 1.0), (35.5, 300, 300)) == (35.5, 256, 256)
    assert initial_patch_size((1.0, 1.0), (3000, 100)) == (2048, 100)


def test_shrink_condition_variants() -> None:
    assert not exceeds_budget(100, 100, ref_batch_size=2, batch_corrected=True)
    assert exceeds_budget(700, 100, ref_batch_size=12, batch_corrected=True)      # 700 / 12 * 2 > 100
    assert not exceeds_budget(600, 100, ref_batch_size=12, batch_corrected=True)  # 2D: shrink until 2 fit
    assert exceeds_budget(101, 100, ref_batch_size=12, batch_corrected=False)


def test_axis_to_reduce_ties_go_to_last_axis() -> None:
    assert axis_to_reduce((64, 64, 64), (100, 100, 100)) == 2
    assert axis_to_reduce((64, 64, 32), (64, 128, 64)) == 0


def test_reduce_patch_does_not_skip_224() -> None:
    # 256 (divisor 64 with 5 pools... here 6) minus the divisor of the reduced patch: 256 -> 224, not 192
    t = pool_and_conv_props((1.0, 1.0, 1.0), (256, 256, 256))
    reduced = reduce_patch((1.0, 1.0, 1.0), t.patch_size, t.divisor, 0)
    assert reduced[0] == 224


def test_shrink_loop_stops_at_budget_and_records_steps() -> None:
    spacing, median = (1.0, 1.0, 1.0), (256.0, 256.0, 256.0)
    start = pool_and_conv_props(spacing, (256, 256, 256))
    history = shrink_to_budget(spacing, median, start, lambda t: math.prod(t.patch_size),
                               budget=128 ** 3, ref_batch_size=2, batch_corrected=False)
    final = history[-1][1]
    assert math.prod(final.patch_size) <= 128 ** 3
    assert math.prod(history[-2][1].patch_size) > 128 ** 3
    assert history[0][1].reduced_axis is None and all(s.reduced_axis is not None for _, s in history[1:])


def test_unreachable_budget_is_a_clear_error() -> None:
    start = pool_and_conv_props((1.0, 1.0), (16, 16))
    with pytest.raises(ConfigError, match="raise --gpu-memory"):
        shrink_to_budget((1.0, 1.0), (16.0, 16.0), start, lambda t: 10 ** 9, budget=1.0, ref_batch_size=12,
                         batch_corrected=False)


# ---- batch size -------------------------------------------------------------------------------------------------
def test_batch_size_hippocampus_default() -> None:
    # memory: round(560e6 / 19,174,400 * 2) = 58; cap: round(36*50*35*208*0.05 / (40*56*40)) = 7
    d = batch_size(budget=560e6, estimate=19_174_400, ref_batch_size=2, dataset_voxels=36 * 50 * 35 * 208,
                   patch_size=(40, 56, 40), max_dataset_covered=0.05)
    assert (d.from_memory, d.coverage_cap, d.batch_size, d.limited_by) == (58, 7, 7, "dataset coverage cap")


def test_batch_size_minimum_and_half_even() -> None:
    d = batch_size(budget=100, estimate=80, ref_batch_size=2, dataset_voxels=1e12, patch_size=(10, 10, 10),
                   max_dataset_covered=1.0)
    assert d.from_memory == 2 and d.batch_size == 2  # round(2.5) = 2
    d = batch_size(budget=100, estimate=1000, ref_batch_size=2, dataset_voxels=1e12, patch_size=(10,),
                   max_dataset_covered=1.0)
    assert d.from_memory == 0 and d.batch_size == 2 and d.limited_by == "minimum batch size"


# ---- normalization ----------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("name", "scheme"), [("CT", "ct"), ("ct", "ct"), ("noNorm", "none"), ("NONORM", "none"),
                                              ("zscore", "zscore"), ("rescale_to_0_1", "rescale_to_0_1"),
                                              ("RGB_to_0_1", "rgb_to_0_1"), ("T1", "zscore"), ("none", "zscore")])
def test_scheme_for_channel(name: str, scheme: str) -> None:
    assert scheme_for_channel(name) == scheme


def test_use_mask_only_for_zscore_below_threshold() -> None:
    schemes = ("ct", "zscore", "none", "rescale_to_0_1")
    assert use_mask_for_norm(schemes, 0.7499) == (False, True, False, False)
    assert use_mask_for_norm(schemes, 0.75) == (False, False, False, False)
    comps = normalization_components(["CT", "T2"], 0.5)
    assert [(c.name, c.params) for c in comps] == [("ct", {"use_mask_for_norm": False}),
                                                   ("zscore", {"use_mask_for_norm": True})]
