"""The whole pipeline: reference rules (§5.5), application rates, shapes, determinism, label sets."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from autounet.augmentation import (
    AugmentationConfig,
    build,
    initial_patch_size,
    mirror_axes,
    preset,
    rotation_range_deg,
    use_dummy_2d,
)
from autounet.augmentation import spatial as spatial_mod
from autounet.errors import ConfigError

STRIDES_3D = [[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2]]


@pytest.mark.parametrize(("patch", "expected"), [
    ((128, 128, 128), (205, 205, 205)),
    ((40, 56, 40), (73, 80, 64)),
    ((160, 224, 192), (294, 341, 289)),
    ((512, 512), (602, 602)),
    ((20, 256, 224), (20, 301, 301)),
])
def test_initial_patch_size_matches_the_reference_table(patch: tuple[int, ...], expected: tuple[int, ...]) -> None:
    assert initial_patch_size(patch) == expected


def test_rules_for_rotation_dummy_2d_and_mirroring() -> None:
    assert rotation_range_deg((56, 40), dummy_2d=False) == (-180.0, 180.0)  # 56/40 = 1.4 <= 1.5
    assert rotation_range_deg((64, 32), dummy_2d=False) == (-15.0, 15.0)
    assert not use_dummy_2d((40, 56, 40)) and rotation_range_deg((40, 56, 40), dummy_2d=False) == (-30.0, 30.0)
    assert not use_dummy_2d((20, 60, 60)) and use_dummy_2d((20, 61, 60))  # max / patch[0] > 3
    assert rotation_range_deg((20, 256, 224), dummy_2d=True) == (-180.0, 180.0)
    assert mirror_axes(3) == (0, 1, 2) and mirror_axes(2) == (0, 1)
    with pytest.raises(ConfigError, match="beyond a 2D patch"):
        mirror_axes(2, preset("default").with_overrides({"mirror": {"axes": [0, 2]}}))


def test_initial_patch_without_spatial_augmentation_is_the_final_patch() -> None:
    assert initial_patch_size((40, 56, 40), config=preset("none")) == (40, 56, 40)


@pytest.mark.parametrize("patch", [(40, 56, 40), (56, 40), (8, 64, 48)])
def test_covering_initial_patch_is_never_left(patch: tuple[int, ...]) -> None:
    cfg = preset("default").with_overrides({"spatial": {"initial_patch": "covering", "p_rotation": 1.0,
                                                         "p_scaling": 1.0}})
    aug = build(cfg, patch_size=patch)
    assert all(i >= p for i, p in zip(aug.initial_patch_size, patch))
    n = 64
    img = torch.ones(n, 1, *aug.initial_patch_size)
    seg = torch.zeros(n, 1, *aug.initial_patch_size, dtype=torch.int16)
    params = aug.make_params(n, channels=1, generator=torch.Generator().manual_seed(0))
    out_img, out_seg = aug._spatial(img, seg, params.spatial)
    assert out_img.min() > 0.999 and (out_seg == 0).all()


def test_reference_initial_patch_can_be_left_which_pads_with_minus_one() -> None:
    aug = build("default", patch_size=(40, 56, 40))
    img = torch.ones(1, 1, *aug.initial_patch_size)
    seg = torch.zeros(1, 1, *aug.initial_patch_size, dtype=torch.int16)
    p = spatial_mod.SpatialParams(rotate=torch.tensor([True]), scale=torch.tensor([True]),
                                  angles=torch.tensor([[0.52, 0.52, 0.52]], dtype=torch.float64),
                                  scales=torch.full((1, 3), 1.4, dtype=torch.float64))
    _, out_seg = aug._spatial(img, seg, p)
    assert (out_seg == -1).any()  # the reference's known weakness (facts §12.4)


def rate(mask: torch.Tensor) -> float:
    return mask.double().mean().item()


def test_application_rates_match_the_probabilities() -> None:
    aug = build("default", patch_size=(40, 56, 40), cascade_labels=(1, 2))
    n = 40000
    params = aug.make_params(n, channels=2, generator=torch.Generator().manual_seed(123))
    expected = {"rotation": 0.2, "scaling": 0.2, "noise": 0.1, "blur": 0.2, "brightness": 0.15, "contrast": 0.15,
                "lowres": 0.25, "gamma_inverted": 0.1, "gamma": 0.3, "mirror": 1 - 0.5 ** 3,
                "binary_operator": 0.4, "remove_component": 0.2}
    applied = params.applied()
    assert set(applied) == set(expected)
    for name, p in expected.items():
        tol = 5 * math.sqrt(p * (1 - p) / n)
        assert abs(rate(applied[name]) - p) < tol, name
    # decisions of different transforms are independent of each other
    joint = rate(applied["noise"] & applied["gamma"])
    assert abs(joint - 0.03) < 5 * math.sqrt(0.03 * 0.97 / n)


def test_parameters_stay_in_range() -> None:
    aug = build("default", patch_size=(56, 40))
    p = aug.make_params(20000, channels=3, generator=torch.Generator().manual_seed(9))
    assert p.spatial.angles.shape == (20000, 1)
    assert p.spatial.angles.abs().max() <= math.pi
    assert p.spatial.scales.min() >= 0.7 and p.spatial.scales.max() <= 1.4
    assert p.noise.sigma.min() >= 0 and p.noise.sigma.max() <= 0.1
    assert p.blur.sigma.min() >= 0.5 and p.blur.sigma.max() <= 1.0
    for f, (lo, hi) in ((p.brightness.factor, (0.75, 1.25)), (p.contrast.factor, (0.75, 1.25)),
                        (p.gamma.factor, (0.7, 1.5)), (p.gamma_inverted.factor, (0.7, 1.5))):
        assert f.min() >= lo and f.max() <= hi
    assert p.lowres.zoom.min() >= 0.5 and p.lowres.zoom.max() <= 1.0


def make_batch(rng: np.random.Generator, b: int, c: int, shape: tuple[int, ...], labels: int = 3,
               s: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    img = torch.from_numpy(rng.normal(size=(b, c, *shape)).astype(np.float32))
    seg = torch.from_numpy(rng.integers(-1, labels, size=(b, s, *shape)).astype(np.int16))
    return img, seg


def test_3d_pipeline_shapes_labels_and_determinism(rng: np.random.Generator) -> None:
    aug = build("default", patch_size=(16, 20, 12), deep_supervision_strides=STRIDES_3D)
    img, seg = make_batch(rng, 6, 2, aug.initial_patch_size)
    out = aug(img, seg, generator=torch.Generator().manual_seed(1))
    assert out.image.shape == (6, 2, 16, 20, 12)
    assert [tuple(t.shape) for t in out.target] == [(6, 1, 16, 20, 12), (6, 1, 8, 10, 6), (6, 1, 4, 5, 3)]
    for t in out.target:
        assert set(t.unique().tolist()) <= {0, 1, 2} and t.dtype == torch.int16
    again = aug(img, seg, generator=torch.Generator().manual_seed(1))
    assert torch.equal(again.image, out.image)
    assert all(torch.equal(a, b) for a, b in zip(again.target, out.target))
    other = aug(img, seg, generator=torch.Generator().manual_seed(2))
    assert not torch.equal(other.image, out.image)


def test_recorded_parameters_replay_exactly(rng: np.random.Generator) -> None:
    aug = build("default", patch_size=(24, 20))
    img, seg = make_batch(rng, 16, 1, aug.initial_patch_size)
    params = aug.make_params(16, channels=1, generator=torch.Generator().manual_seed(5))
    a, b = aug.apply(img, seg, params), aug.apply(img, seg, params)
    assert torch.equal(a.image, b.image) and torch.equal(a.target, b.target)


def test_none_preset_is_a_centre_crop(rng: np.random.Generator) -> None:
    aug = build("none", patch_size=(10, 12))
    img, seg = make_batch(rng, 4, 1, (14, 15))
    out = aug(img, seg, generator=torch.Generator().manual_seed(0))
    assert torch.equal(out.image, img[:, :, 2:12, 1:13])
    assert torch.equal(out.target, seg[:, :, 2:12, 1:13].clamp_min(0))


def test_dummy_2d_rotates_in_plane_only(rng: np.random.Generator) -> None:
    cfg = preset("none").with_overrides({"spatial": {"p_rotation": 1.0, "initial_patch": "covering"}})
    aug = build(cfg, patch_size=(4, 16, 16))
    assert aug.dummy_2d and aug.initial_patch_size[0] == 4
    img = torch.zeros(2, 1, *aug.initial_patch_size)
    img[:, :, 1] = 1.0  # one bright slice: an in-plane rotation keeps it in slice 1
    seg = torch.zeros(2, 1, *aug.initial_patch_size, dtype=torch.int16)
    seg[:, :, 2] = 1
    out = aug(img, seg, generator=torch.Generator().manual_seed(0))
    assert out.image.shape == (2, 1, 4, 16, 16)
    assert torch.allclose(out.image[:, :, 1], torch.ones(2, 1, 16, 16), atol=1e-5)
    assert out.image[:, :, [0, 2, 3]].abs().max() < 1e-6
    assert (out.target[:, :, 2] == 1).all() and (out.target[:, :, [0, 1, 3]] == 0).all()


def test_2d_large_batch(rng: np.random.Generator) -> None:
    aug = build("default", patch_size=(56, 40), deep_supervision_strides=[[1, 1], [2, 2], [2, 2]])
    assert aug.initial_patch_size == (65, 65)
    img, seg = make_batch(rng, 64, 1, aug.initial_patch_size)
    out = aug(img, seg, generator=torch.Generator().manual_seed(3))
    assert out.image.shape == (64, 1, 56, 40)
    assert [tuple(t.shape[2:]) for t in out.target] == [(56, 40), (28, 20)]
    assert torch.isfinite(out.image).all()


def test_mask_for_norm_zeroes_outside_before_labels_become_background(rng: np.random.Generator) -> None:
    aug = build("none", patch_size=(6, 6), use_mask_for_norm=[False, True])
    img = torch.ones(1, 2, 6, 6)
    seg = torch.zeros(1, 1, 6, 6, dtype=torch.int16)
    seg[..., :2] = -1
    out = aug(img, seg, generator=torch.Generator())
    assert (out.image[0, 0] == 1).all()
    assert (out.image[0, 1, :, :2] == 0).all() and (out.image[0, 1, :, 2:] == 1).all()
    assert (out.target == 0).all()


def test_cascade_and_regions(rng: np.random.Generator) -> None:
    aug = build("default", patch_size=(12, 12, 12), cascade_labels=(1, 2), regions=[(1, 2), (2,)], ignore_label=3)
    img, seg = make_batch(rng, 5, 1, aug.initial_patch_size, labels=4, s=2)
    out = aug(img, seg, generator=torch.Generator().manual_seed(0))
    assert out.image.shape == (5, 3, 12, 12, 12)
    assert set(out.image[:, 1:].unique().tolist()) <= {0.0, 1.0}
    assert out.target.shape == (5, 3, 12, 12, 12) and out.target.dtype == torch.bool
    val = aug.validation(img[:, :, :12, :12, :12], seg[:, :, :12, :12, :12])
    prev = seg[:, 1, :12, :12, :12]
    assert torch.equal(val.image[:, 1], (prev == 1).float()) and torch.equal(val.image[:, 2], (prev == 2).float())
    assert torch.equal(val.target[:, 2], seg[:, 0, :12, :12, :12] == 3)


def test_augment_then_prepare_equals_the_full_call(rng: np.random.Generator) -> None:
    aug = build("default", patch_size=(20, 16), deep_supervision_strides=[[1, 1], [2, 2], [2, 2]])
    img, seg = make_batch(rng, 8, 1, aug.initial_patch_size)
    full = aug(img, seg, generator=torch.Generator().manual_seed(4))
    data, s = aug.augment(img, seg, generator=torch.Generator().manual_seed(4))
    assert (s == -1).any()  # the outside label survives until prepare
    inputs, tgts = aug.prepare(data, s)
    assert torch.equal(inputs, full.image) and all(torch.equal(a, b) for a, b in zip(tgts, full.target))


def test_bad_inputs_are_reported() -> None:
    aug = build("default", patch_size=(8, 8))
    with pytest.raises(ValueError, match="must both be"):
        aug(torch.zeros(2, 1, 8, 8, 8), torch.zeros(2, 1, 8, 8, 8, dtype=torch.int16), generator=torch.Generator())
    with pytest.raises(ValueError, match="integer labels"):
        aug(torch.zeros(2, 1, 9, 9), torch.zeros(2, 1, 9, 9), generator=torch.Generator())
    with pytest.raises(ValueError, match="final patch size"):
        aug.validation(torch.zeros(2, 1, 9, 9), torch.zeros(2, 1, 9, 9, dtype=torch.int16))
    with pytest.raises(ConfigError, match="patch_size"):
        build("default", patch_size=(8,))
    with pytest.raises(ConfigError, match="do not match"):
        build("default", patch_size=(8, 8), deep_supervision_strides=STRIDES_3D)


def test_config_object_and_name_give_the_same_pipeline() -> None:
    assert build(AugmentationConfig(), patch_size=(8, 8)) == build("default", patch_size=(8, 8))


@pytest.mark.parametrize(("patch", "cascade"), [((20, 16), False), ((12, 16, 12), True)])
def test_threaded_apply_is_identical(rng: np.random.Generator, patch: tuple[int, ...], cascade: bool) -> None:
    strides = [[1] * len(patch), [2] * len(patch)]
    cfg = preset("default").with_overrides({"noise": {"p": 0.6}})
    aug = build(cfg, patch_size=patch, deep_supervision_strides=strides,
                cascade_labels=(1, 2) if cascade else None)
    img, seg = make_batch(rng, 7, 2, aug.initial_patch_size, s=2 if cascade else 1)
    params = aug.make_params(7, channels=2, generator=torch.Generator().manual_seed(8))
    assert bool(params.noise.apply.any())
    one = aug.apply(img, seg, params)
    many = aug.apply(img, seg, params, threads=3)
    assert torch.equal(one.image, many.image)
    assert all(torch.equal(a, b) for a, b in zip(one.target, many.target))


def test_params_take_selects_samples() -> None:
    aug = build("default", patch_size=(8, 8), cascade_labels=(1,))
    p = aug.make_params(5, channels=1, generator=torch.Generator().manual_seed(0))
    sub = p.take(torch.tensor([4, 1]))
    assert torch.equal(sub.spatial.angles, p.spatial.angles[[4, 1]])
    assert torch.equal(sub.blur.sigma, p.blur.sigma[[4, 1]])
    assert sub.noise.seed == p.noise.seed and sub.binary_operator is not None
    assert torch.equal(sub.binary_operator.order, p.binary_operator.order[[4, 1]])
