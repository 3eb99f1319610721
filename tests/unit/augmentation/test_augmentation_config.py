"""AugmentationConfig: presets, JSON files with overrides, validation errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autounet.augmentation import AugmentationConfig, load, preset
from autounet.errors import ConfigError


def test_default_preset_is_the_reference_pipeline() -> None:
    cfg = preset("default")
    assert (cfg.spatial.p_rotation, cfg.spatial.p_scaling, cfg.spatial.scaling) == (0.2, 0.2, (0.7, 1.4))
    assert cfg.spatial.p_synchronize_scaling == 1.0
    assert (cfg.noise.p, cfg.noise.sigma) == (0.1, (0.0, 0.1))
    assert (cfg.blur.p, cfg.blur.p_per_channel, cfg.blur.sigma) == (0.2, 0.5, (0.5, 1.0))
    assert (cfg.brightness.p, cfg.brightness.multiplier) == (0.15, (0.75, 1.25))
    assert (cfg.contrast.p, cfg.contrast.factor, cfg.contrast.preserve_range) == (0.15, (0.75, 1.25), True)
    assert (cfg.lowres.p, cfg.lowres.p_per_channel, cfg.lowres.zoom) == (0.25, 0.5, (0.5, 1.0))
    assert (cfg.gamma_inverted.p, cfg.gamma_inverted.invert, cfg.gamma_inverted.gamma) == (0.1, True, (0.7, 1.5))
    assert (cfg.gamma.p, cfg.gamma.invert, cfg.gamma.gamma) == (0.3, False, (0.7, 1.5))
    assert cfg.mirror.p_per_axis == 0.5 and cfg.mirror.axes is None
    assert (cfg.cascade.p_binary_operator, cfg.cascade.radius, cfg.cascade.p_remove_component,
            cfg.cascade.max_component_fraction) == (0.4, (1.0, 8.0), 0.2, 0.15)


def test_none_preset_switches_everything_off() -> None:
    cfg = preset("none")
    assert not cfg.spatial.active
    probs = [cfg.noise.p, cfg.blur.p, cfg.brightness.p, cfg.contrast.p, cfg.lowres.p, cfg.gamma.p,
             cfg.gamma_inverted.p, cfg.mirror.p_per_axis, cfg.cascade.p_binary_operator,
             cfg.cascade.p_remove_component]
    assert probs == [0.0] * len(probs)


def test_reference_alias_and_unknown_preset_suggestion() -> None:
    assert load("reference") == preset("default")
    with pytest.raises(ConfigError, match="Did you mean 'default'"):
        load("defualt")


def test_round_trip_through_dict() -> None:
    cfg = preset("light")
    assert AugmentationConfig.from_dict(cfg.to_dict()) == cfg
    assert json.loads(json.dumps(cfg.to_dict()))["schema"] == "autounet/augmentation"


def test_json_file_overrides_single_fields(tmp_path: Path) -> None:
    path = tmp_path / "aug.json"
    path.write_text(json.dumps({"base": "default", "noise": {"p": 0.0},
                                "spatial": {"rotation_deg": [-15, 15], "segmentation_mode": "nearest"}}))
    cfg = load(path)
    assert cfg.noise.p == 0.0 and cfg.noise.sigma == (0.0, 0.1)
    assert cfg.spatial.rotation_deg == (-15, 15) and cfg.spatial.segmentation_mode == "nearest"
    assert cfg.blur == preset("default").blur


@pytest.mark.parametrize(("content", "message"), [
    ({"nosie": {"p": 0}}, "unknown key.*nosie"),
    ({"noise": {"prob": 0}}, "unknown field.*prob.*Allowed: p, sigma"),
    ({"noise": {"p": 1.5}}, "noise.p must be a probability"),
    ({"blur": {"sigma": [1.0, 0.5]}}, "blur.sigma must be a pair"),
    ({"spatial": {"segmentation_mode": "cubic"}}, "segmentation_mode"),
    ({"base": "strong"}, "Unknown augmentation preset 'strong'"),
])
def test_bad_files_name_the_problem(tmp_path: Path, content: dict, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(content))
    with pytest.raises(ConfigError, match=message):
        load(path)


def test_missing_and_malformed_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load(tmp_path / "missing.json")
    bad = tmp_path / "broken.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError, match="broken.json is not valid JSON"):
        load(bad)
