"""Reference plans conversion (both ways) and configuration inheritance."""

from __future__ import annotations

import copy
import json

import pytest
from _planning_golden import GOLDEN, diff

from autounet.errors import PlansError
from autounet.planning import plan
from autounet.planning.reference import export_plans, import_plans

HIPPO = GOLDEN / "Dataset004_Hippocampus"
ANISO = GOLDEN / "Dataset501_AnisoCT"


def _load(path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


@pytest.mark.parametrize("path", sorted(p for p in GOLDEN.glob("Dataset*/*Plans*.json")), ids=lambda p: p.name)
def test_import_then_export_is_lossless(path) -> None:
    reference = _load(path)
    plans = import_plans(reference)
    assert not diff(export_plans(plans), reference)
    for name in plans.configuration_names():
        plans.configuration(name)  # every configuration resolves and validates


def test_export_then_import_is_lossless(lits_like) -> None:
    fp, spec = lits_like
    ours = plan(fp, spec, preset="resenc-l", image_reader="simpleitk")
    again = import_plans(export_plans(ours))
    assert again.configurations == ours.configurations
    assert again.planner == "resenc-l" and again.image_reader_writer == "simpleitk"


def test_component_names_are_mapped() -> None:
    plans = import_plans(_load(ANISO / "nnUNetPlans.json"))
    c = plans.configuration("3d_lowres")
    assert c.normalization[0].name == "ct" and c.resampling_data.name == "default"
    assert c.network.name == "plain_unet" and c.network.norm == "instance" and c.network.nonlin == "leaky_relu"
    assert c.next_stage == ("3d_cascade_fullres",) and c.preprocessor == "default"
    assert plans.image_reader_writer == "simpleitk" and plans.planner == "default"


def test_bs16_inheritance_as_users_do_it() -> None:
    reference = _load(HIPPO / "nnUNetPlans.json")
    reference["configurations"]["3d_fullres_bs16"] = {"inherits_from": "3d_fullres", "batch_size": 16}
    plans = import_plans(reference)
    bs16, base = plans.configuration("3d_fullres_bs16"), plans.configuration("3d_fullres")
    assert bs16.batch_size == 16
    assert bs16.data_identifier == base.data_identifier and bs16.network == base.network
    assert bs16.patch_size == base.patch_size
    assert export_plans(plans)["configurations"]["3d_fullres_bs16"] == {"inherits_from": "3d_fullres",
                                                                        "batch_size": 16}


def test_nested_settings_are_replaced_not_merged() -> None:
    reference = _load(HIPPO / "nnUNetPlans.json")
    arch = copy.deepcopy(reference["configurations"]["3d_fullres"]["architecture"])
    arch["arch_kwargs"]["features_per_stage"] = [16, 32, 64, 128]
    reference["configurations"]["small"] = {"inherits_from": "3d_fullres", "architecture": arch}
    plans = import_plans(reference)
    assert plans.configuration("small").network.features_per_stage == (16, 32, 64, 128)
    assert plans.configurations["small"]["network"]["name"] == "plain_unet"


def test_partial_override_of_one_grouped_key() -> None:
    reference = _load(HIPPO / "nnUNetPlans.json")
    reference["configurations"]["masked"] = {"inherits_from": "3d_fullres", "use_mask_for_norm": [True]}
    plans = import_plans(reference)
    norm = plans.configuration("masked").normalization[0]
    assert norm.name == "zscore" and norm.params["use_mask_for_norm"] is True
    assert export_plans(plans)["configurations"]["masked"]["normalization_schemes"] == ["ZScoreNormalization"]


def test_inheritance_cycle_and_unknown_parent() -> None:
    reference = _load(HIPPO / "nnUNetPlans.json")
    reference["configurations"]["a"] = {"inherits_from": "b", "batch_size": 3}
    reference["configurations"]["b"] = {"inherits_from": "a"}
    with pytest.raises(PlansError, match="ircular"):
        import_plans(reference)
    reference = _load(HIPPO / "nnUNetPlans.json")
    reference["configurations"]["a"] = {"inherits_from": "3d_fulres", "batch_size": 3}
    with pytest.raises(PlansError, match="3d_fulres"):
        import_plans(reference)


@pytest.mark.parametrize(("mutate", "message"), [
    (lambda c: c["architecture"].__setitem__("network_class_name", "my.fancy.Net"), "my.fancy.Net"),
    (lambda c: c["architecture"]["arch_kwargs"].__setitem__("dropout_op", "torch.nn.Dropout3d"), "dropout_op"),
    (lambda c: c.__setitem__("normalization_schemes", ["MyNormalization"]), "MyNormalization"),
    (lambda c: c.__setitem__("preprocessor_name", "MyPreprocessor"), "MyPreprocessor"),
    (lambda c: c.__setitem__("resampling_fn_data", "resample_torch_fornnunet"), "resample_torch_fornnunet"),
    (lambda c: c.__setitem__("my_key", 1), "my_key"),
])
def test_unsupported_components_are_refused(mutate, message: str) -> None:
    reference = _load(HIPPO / "nnUNetPlans.json")
    mutate(reference["configurations"]["3d_fullres"])
    with pytest.raises(PlansError, match=message):
        import_plans(reference)


def test_legacy_plans_are_converted() -> None:
    reference = _load(HIPPO / "nnUNetPlans.json")
    cfg = reference["configurations"]["3d_fullres"]
    kw = cfg.pop("architecture")["arch_kwargs"]
    cfg.update({"UNet_class_name": "PlainConvUNet", "UNet_base_num_features": 32, "unet_max_num_features": 320,
                "n_conv_per_stage_encoder": kw["n_conv_per_stage"],
                "n_conv_per_stage_decoder": kw["n_conv_per_stage_decoder"], "num_pool_per_axis": [3, 3, 3],
                "pool_op_kernel_sizes": kw["strides"], "conv_kernel_sizes": kw["kernel_sizes"]})
    plans = import_plans(reference)
    net = plans.configuration("3d_fullres").network
    assert net.features_per_stage == (32, 64, 128, 256) and net.strides[1] == (2, 2, 2)
