"""The planner end to end on synthetic fingerprints: the worked examples of facts §3.15 and the option rules."""

from __future__ import annotations

import pytest
from _planning_data import make_fingerprint, make_spec

from autounet.errors import ConfigError, UsageError
from autounet.planning import format_explanation, plan, plan_detailed
from autounet.schemas.plans import Plans


def test_hippocampus_like_worked_example(hippocampus_like) -> None:
    fp, spec = hippocampus_like
    plans = plan(fp, spec, dataset_name="Dataset004_Hippocampus")
    full, two = plans.configuration("3d_fullres"), plans.configuration("2d")
    assert full.patch_size == (40, 56, 40) and full.batch_size == 9
    assert full.network.strides == ((1, 1, 1),) + ((2, 2, 2),) * 3 and full.network.n_stages == 4
    assert full.network.features_per_stage == (32, 64, 128, 256)
    assert full.network.blocks_per_stage == (2, 2, 2, 2) and full.network.convs_per_stage_decoder == (2, 2, 2)
    assert two.patch_size == (56, 40) and two.batch_size == 366
    assert plans.configuration_names() == ["2d", "3d_fullres"]
    assert full.data_identifier == "nnUNetPlans_3d_fullres" and plans.planner == "default"


@pytest.mark.parametrize(("preset", "batch"), [("resenc-m", 58), ("resenc-l", 178), ("resenc-xl", 183)])
def test_hippocampus_like_resenc_presets(hippocampus_like, preset: str, batch: int) -> None:
    fp, spec = hippocampus_like
    plans = plan(fp, spec, preset=preset)
    full = plans.configuration("3d_fullres")
    assert full.patch_size == (40, 56, 40) and full.batch_size == batch
    assert full.network.name == "resenc_unet" and full.network.blocks_per_stage == (1, 3, 4, 6)
    assert full.network.convs_per_stage_decoder == (1, 1, 1)
    assert full.data_identifier == "nnUNetPlans_3d_fullres"  # shares the default planner's data
    assert plans.plans_name == {"resenc-m": "nnUNetResEncUNetMPlans", "resenc-l": "nnUNetResEncUNetLPlans",
                                "resenc-xl": "nnUNetResEncUNetXLPlans"}[preset]


def test_lits_like_lowres_and_cascade(lits_like) -> None:
    fp, spec = lits_like
    plans = plan(fp, spec)
    assert plans.configuration_names() == ["2d", "3d_lowres", "3d_fullres", "3d_cascade_fullres"]
    low, full = plans.configuration("3d_lowres"), plans.configuration("3d_fullres")
    assert full.patch_size == (128, 128, 128) and full.batch_size == 2 and full.network.n_stages == 6
    assert low.patch_size == (128, 128, 128) and low.median_image_size_in_voxels == (178, 211, 211)
    assert [round(s, 2) for s in low.spacing] == [2.43, 1.87, 1.87]
    assert low.next_stage == ("3d_cascade_fullres",) and not low.batch_dice and full.batch_dice
    cascade = plans.configuration("3d_cascade_fullres")
    assert cascade.previous_stage == "3d_lowres" and cascade.patch_size == full.patch_size
    assert plans.configurations["3d_cascade_fullres"] == {"inherits_from": "3d_fullres", "previous_stage": "3d_lowres"}
    two = plans.configuration("2d")
    assert two.patch_size == (512, 512) and two.batch_size == 12 and two.network.n_stages == 8
    assert two.network.features_per_stage[-1] == 512 and two.batch_dice


def test_lits_like_resenc_l_patch(lits_like) -> None:
    fp, spec = lits_like
    assert plan(fp, spec, preset="resenc-l").configuration("3d_fullres").patch_size == (160, 224, 192)


def test_no_lowres_means_no_batch_dice_for_fullres(hippocampus_like) -> None:
    fp, spec = hippocampus_like
    assert not plan(fp, spec).configuration("3d_fullres").batch_dice


def test_2d_dataset_has_only_2d() -> None:
    fp = make_fingerprint([(999, 1, 1)] * 10, [(1, 300, 400)] * 10, channels=3)
    plans = plan(fp, make_spec(["R", "G", "B"], 2, 10, ".png"))
    assert plans.configuration_names() == ["2d"]
    assert plans.transpose_forward == (0, 1, 2)


def test_transpose_moves_coarse_axis_first() -> None:
    fp = make_fingerprint([(0.7, 0.7, 4.0)] * 20, [(300, 300, 40)] * 20)
    plans = plan(fp, make_spec(["CT"], 2, 20))
    assert plans.transpose_forward == (2, 0, 1) and plans.transpose_backward == (1, 2, 0)
    assert plans.configuration("2d").spacing == (0.7, 0.7)
    assert plans.original_median_shape_after_transp == (40, 300, 300)


def test_use_mask_follows_crop_size() -> None:
    fp = make_fingerprint([(1, 1, 1)] * 20, [(60, 60, 60)] * 20, channels=2, relative_size=0.5)
    norms = plan(fp, make_spec(["CT", "T1"], 2, 20)).configuration("3d_fullres").normalization
    assert [(n.name, n.params["use_mask_for_norm"]) for n in norms] == [("ct", False), ("zscore", True)]


def test_resampling_settings() -> None:
    fp = make_fingerprint([(1, 1, 1)] * 20, [(60, 60, 60)] * 20)
    c = plan(fp, make_spec(["CT"], 2, 20)).configuration("3d_fullres")
    assert c.resampling_data.name == "default"
    assert c.resampling_data.params == {"is_seg": False, "order": 3, "order_z": 0, "force_separate_z": None}
    assert c.resampling_seg.params == {"is_seg": True, "order": 1, "order_z": 0, "force_separate_z": None}
    assert c.resampling_probabilities.params == {"is_seg": False, "order": 1, "order_z": 0,
                                                 "force_separate_z": None}


def test_custom_gpu_memory_needs_new_plans_name(hippocampus_like) -> None:
    fp, spec = hippocampus_like
    with pytest.raises(UsageError, match="--plans "):
        plan(fp, spec, preset="resenc-l", gpu_memory_gb=40)
    with pytest.raises(UsageError, match="belongs to a preset"):
        plan(fp, spec, preset="resenc-l", gpu_memory_gb=40, plans_name="nnUNetPlans")
    plans = plan(fp, spec, preset="resenc-l", gpu_memory_gb=40, plans_name="MyPlans40")
    assert plans.plans_name == "MyPlans40" and plans.provenance["gpu_memory_gb"] == 40
    assert plan(fp, spec, preset="resenc-l", gpu_memory_gb=24).plans_name == "nnUNetResEncUNetLPlans"


def test_target_spacing_override(hippocampus_like) -> None:
    fp, spec = hippocampus_like
    with pytest.raises(UsageError):
        plan(fp, spec, target_spacing=(2.0, 2.0, 2.0))
    plans = plan(fp, spec, preset="resenc-m", target_spacing=(2.0, 2.0, 2.0), plans_name="Coarse")
    full = plans.configuration("3d_fullres")
    assert full.spacing == (2.0, 2.0, 2.0) and full.median_image_size_in_voxels == (18, 25, 18)
    assert full.data_identifier == "Coarse_3d_fullres"  # never shares nnUNetPlans data at another spacing
    with pytest.raises(ConfigError):
        plan(fp, spec, target_spacing=(1.0, 0.0, 1.0), plans_name="Bad")


def test_configuration_filter(lits_like) -> None:
    fp, spec = lits_like
    assert plan(fp, spec, configurations=["3d_fullres"]).configuration_names() == ["3d_fullres"]
    names = plan(fp, spec, configurations=["3d_cascade_fullres"]).configuration_names()
    assert names == ["3d_lowres", "3d_fullres", "3d_cascade_fullres"]
    with pytest.raises(UsageError, match="unknown configuration"):
        plan(fp, spec, configurations=["3d"])


def test_unknown_preset_suggests(hippocampus_like) -> None:
    fp, spec = hippocampus_like
    with pytest.raises(ConfigError, match="resenc-l"):
        plan(fp, spec, preset="resenc_l")
    assert plan(fp, spec, preset="nnUNetPlannerResEncL").planner == "resenc-l"  # reference class name as alias


def test_channel_mismatch_is_an_error(hippocampus_like) -> None:
    fp, _ = hippocampus_like
    with pytest.raises(ConfigError, match="channel"):
        plan(fp, make_spec(["T1", "T2"], 3, 260))


def test_explanation_is_data_and_matches_plans(lits_like) -> None:
    fp, spec = lits_like
    result = plan_detailed(fp, spec, preset="resenc-l")
    e = result.explanation
    by_name = {c.name: c for c in e.configurations}
    assert set(by_name) == {"2d", "3d_lowres", "3d_fullres"}
    full = by_name["3d_fullres"]
    assert full.steps[-1].patch_size == result.plans.configuration("3d_fullres").patch_size
    assert len(full.steps) > 1 and full.steps[-1].estimate <= full.budget < full.steps[-2].estimate
    assert e.lowres_steps and e.lowres_outcome.startswith("created")
    text = format_explanation(e)
    assert "VRAM budget" in text and "3d_lowres search" in text and "160, 224, 192" in text


def test_plans_roundtrip_through_schema(lits_like) -> None:
    fp, spec = lits_like
    plans = plan(fp, spec)
    again = Plans.from_dict(plans.to_dict())
    assert again.configurations == plans.configurations
    assert plans.provenance["upstream_sha256"] == fp.sha256()


def test_planning_is_deterministic(lits_like) -> None:
    fp, spec = lits_like
    a, b = plan(fp, spec).to_dict(), plan(fp, spec).to_dict()
    a.pop("provenance"), b.pop("provenance")
    assert a == b
