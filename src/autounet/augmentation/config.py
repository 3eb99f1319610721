"""The typed augmentation configuration: one record per transform family, presets by name, JSON files.

Everything a user may want to change without code lives here: the probability of each transform and its
parameter ranges. ``default`` is the reference's training pipeline (facts §5.4, §5.5, Appendix A), ``light``
keeps only the spatial transform and mirroring, ``none`` switches every transform off.

A JSON file names a ``base`` preset and overrides single fields, for example::

    {"base": "default", "noise": {"p": 0.0}, "spatial": {"rotation_deg": [-15, 15]}}

Unknown sections or fields are errors that list the allowed names.
"""

from __future__ import annotations

import dataclasses
import math
import os
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from autounet.errors import ConfigError, SchemaError
from autounet.registry import Registry
from autounet.schemas._base import read_json

SCHEMA = "autounet/augmentation"
SCHEMA_VERSION = 1

Range = tuple[float, float]
SegmentationMode = Literal["linear_onehot", "nearest"]
InitialPatchMode = Literal["reference", "covering"]


def _check_p(owner: str, name: str, value: float) -> None:
    if not (isinstance(value, (int, float)) and 0.0 <= float(value) <= 1.0):
        msg = f"augmentation {owner}.{name} must be a probability in [0, 1], got {value!r}."
        raise ConfigError(msg)


def _check_range(owner: str, name: str, value: Range, *, low: float = -math.inf, high: float = math.inf) -> None:
    ok = (isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, (int, float)) for v in value)
          and low <= value[0] <= value[1] <= high)
    if not ok:
        msg = (f"augmentation {owner}.{name} must be a pair [lo, hi] with {low} <= lo <= hi <= {high},"
               f" got {value!r}.")
        raise ConfigError(msg)


@dataclass(frozen=True)
class SpatialConfig:
    """Rotation and scaling, realised by one resampling of the enlarged patch onto the final patch.

    Attributes:
        p_rotation: probability that a sample is rotated (all axes at once).
        rotation_deg: angle range in degrees, or ``None`` for the reference's rule (§5.5: 2D ±180°, or ±15° for
            elongated patches; 3D ±30°; dummy-2D ±180°).
        p_scaling: probability that a sample is scaled.
        scaling: scale-factor range; values above 1 sample a larger area (objects look smaller).
        p_synchronize_scaling: probability that all axes share one scale factor (otherwise one per axis).
        segmentation_mode: ``linear_onehot`` (each label's indicator interpolated, per-voxel winner, nearest
            neighbour settles ties) or ``nearest``.
        dummy_2d: rotate/scale 3D patches in-plane only; ``None`` applies the reference's rule
            (``max(patch) / patch[0] > 3``).
        initial_patch: ``reference`` (the reference's enlarged-patch formula, §5.5) or ``covering`` (the true
            bounding box of the rotated and scaled patch, so no padding is ever sampled; larger crops).
    """

    p_rotation: float = 0.2
    rotation_deg: Range | None = None
    p_scaling: float = 0.2
    scaling: Range = (0.7, 1.4)
    p_synchronize_scaling: float = 1.0
    segmentation_mode: SegmentationMode = "linear_onehot"
    dummy_2d: bool | None = None
    initial_patch: InitialPatchMode = "reference"

    def __post_init__(self) -> None:
        for name in ("p_rotation", "p_scaling", "p_synchronize_scaling"):
            _check_p("spatial", name, getattr(self, name))
        if self.rotation_deg is not None:
            _check_range("spatial", "rotation_deg", self.rotation_deg, low=-360, high=360)
        _check_range("spatial", "scaling", self.scaling, low=1e-3)
        if self.segmentation_mode not in ("linear_onehot", "nearest"):
            msg = (f"augmentation spatial.segmentation_mode must be 'linear_onehot' or 'nearest', "
                   f"got {self.segmentation_mode!r}.")
            raise ConfigError(msg)
        if self.initial_patch not in ("reference", "covering"):
            msg = f"augmentation spatial.initial_patch must be 'reference' or 'covering', got {self.initial_patch!r}."
            raise ConfigError(msg)

    @property
    def active(self) -> bool:
        """Whether any sample can be resampled."""
        return self.p_rotation > 0 or self.p_scaling > 0


@dataclass(frozen=True)
class NoiseConfig:
    """Additive Gaussian noise: one standard deviation per sample, shared by all channels."""

    p: float = 0.1
    sigma: Range = (0.0, 0.1)

    def __post_init__(self) -> None:
        _check_p("noise", "p", self.p)
        _check_range("noise", "sigma", self.sigma, low=0.0)


@dataclass(frozen=True)
class BlurConfig:
    """Separable Gaussian blur: each channel with ``p_per_channel``; one sigma per channel and axis."""

    p: float = 0.2
    p_per_channel: float = 0.5
    sigma: Range = (0.5, 1.0)

    def __post_init__(self) -> None:
        _check_p("blur", "p", self.p)
        _check_p("blur", "p_per_channel", self.p_per_channel)
        _check_range("blur", "sigma", self.sigma, low=1e-3)


@dataclass(frozen=True)
class BrightnessConfig:
    """Multiplicative brightness: one factor per channel from the two-sided sampler on ``multiplier``."""

    p: float = 0.15
    multiplier: Range = (0.75, 1.25)

    def __post_init__(self) -> None:
        _check_p("brightness", "p", self.p)
        _check_range("brightness", "multiplier", self.multiplier, low=0.0)


@dataclass(frozen=True)
class ContrastConfig:
    """Contrast around the channel mean, one factor per channel; optionally clamped to the original range."""

    p: float = 0.15
    factor: Range = (0.75, 1.25)
    preserve_range: bool = True

    def __post_init__(self) -> None:
        _check_p("contrast", "p", self.p)
        _check_range("contrast", "factor", self.factor, low=0.0)


@dataclass(frozen=True)
class LowResConfig:
    """Simulated low resolution: nearest downsampling by ``zoom`` (per channel, all axes) and linear upsampling."""

    p: float = 0.25
    p_per_channel: float = 0.5
    zoom: Range = (0.5, 1.0)

    def __post_init__(self) -> None:
        _check_p("lowres", "p", self.p)
        _check_p("lowres", "p_per_channel", self.p_per_channel)
        _check_range("lowres", "zoom", self.zoom, low=1e-3, high=1.0)


@dataclass(frozen=True)
class GammaConfig:
    """Gamma on the min-max-normalised channel, restoring mean and std; ``invert`` works on the negated image."""

    p: float = 0.3
    gamma: Range = (0.7, 1.5)
    invert: bool = False

    def __post_init__(self) -> None:
        _check_p("gamma", "p", self.p)
        _check_range("gamma", "gamma", self.gamma, low=1e-3)


@dataclass(frozen=True)
class MirrorConfig:
    """Flips: each allowed axis independently with ``p_per_axis``; ``axes=None`` allows every spatial axis."""

    p_per_axis: float = 0.5
    axes: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        _check_p("mirror", "p_per_axis", self.p_per_axis)
        if self.axes is not None and (not all(isinstance(a, int) and 0 <= a <= 2 for a in self.axes)
                                      or len(set(self.axes)) != len(self.axes)):
            msg = f"augmentation mirror.axes must be distinct spatial axes in 0..2, got {self.axes!r}."
            raise ConfigError(msg)


@dataclass(frozen=True)
class CascadeConfig:
    """Perturbations of the previous stage's one-hot segmentation (cascade configurations only)."""

    p_binary_operator: float = 0.4
    p_per_label_binary_operator: float = 0.5
    radius: Range = (1.0, 8.0)
    p_remove_component: float = 0.2
    p_per_label_remove_component: float = 0.5
    max_component_fraction: float = 0.15

    def __post_init__(self) -> None:
        for name in ("p_binary_operator", "p_per_label_binary_operator", "p_remove_component",
                     "p_per_label_remove_component", "max_component_fraction"):
            _check_p("cascade", name, getattr(self, name))
        _check_range("cascade", "radius", self.radius, low=0.0, high=64.0)


_SECTIONS: dict[str, type] = {
    "spatial": SpatialConfig,
    "noise": NoiseConfig,
    "blur": BlurConfig,
    "brightness": BrightnessConfig,
    "contrast": ContrastConfig,
    "lowres": LowResConfig,
    "gamma_inverted": GammaConfig,
    "gamma": GammaConfig,
    "mirror": MirrorConfig,
    "cascade": CascadeConfig,
}


@dataclass(frozen=True)
class AugmentationConfig:
    """Every setting of the training augmentation pipeline, in the reference's order of application."""

    name: str = "default"
    spatial: SpatialConfig = field(default_factory=SpatialConfig)
    noise: NoiseConfig = field(default_factory=NoiseConfig)
    blur: BlurConfig = field(default_factory=BlurConfig)
    brightness: BrightnessConfig = field(default_factory=BrightnessConfig)
    contrast: ContrastConfig = field(default_factory=ContrastConfig)
    lowres: LowResConfig = field(default_factory=LowResConfig)
    gamma_inverted: GammaConfig = field(default_factory=lambda: GammaConfig(p=0.1, invert=True))
    gamma: GammaConfig = field(default_factory=GammaConfig)
    mirror: MirrorConfig = field(default_factory=MirrorConfig)
    cascade: CascadeConfig = field(default_factory=CascadeConfig)

    def to_dict(self) -> dict[str, Any]:
        """The full configuration as JSON-ready data (with the schema header), e.g. to save next to a model."""
        body: dict[str, Any] = {"schema": SCHEMA, "schema_version": SCHEMA_VERSION, "name": self.name}
        for section in _SECTIONS:
            body[section] = {k: _jsonable(v) for k, v in dataclasses.asdict(getattr(self, section)).items()}
        return body

    @classmethod
    def from_dict(cls, data: Any, *, where: str = "augmentation config") -> AugmentationConfig:
        """Build a configuration from ``to_dict`` output or a partial override dict with an optional ``base``."""
        if not isinstance(data, dict):
            msg = f"{where}: expected a JSON object, got {type(data).__name__}."
            raise ConfigError(msg)
        allowed = {"schema", "schema_version", "name", "base", *_SECTIONS}
        unknown = sorted(set(data) - allowed)
        if unknown:
            msg = f"{where}: unknown key(s) {', '.join(unknown)}. Allowed: {', '.join(sorted(allowed))}."
            raise ConfigError(msg)
        if "schema" in data and data["schema"] != SCHEMA:
            msg = f"{where}: expected schema {SCHEMA!r}, found {data['schema']!r}."
            raise ConfigError(msg)
        if data.get("schema_version", SCHEMA_VERSION) != SCHEMA_VERSION:
            msg = (f"{where}: unsupported schema_version {data['schema_version']!r} "
                   f"(this autounet reads {SCHEMA_VERSION}).")
            raise ConfigError(msg)
        base = preset(str(data.get("base", "default")))
        return base.with_overrides({k: v for k, v in data.items() if k in _SECTIONS},
                                   name=str(data.get("name", data.get("base", base.name))), where=where)

    def with_overrides(self, overrides: dict[str, dict[str, Any]], *, name: str | None = None,
                       where: str = "augmentation overrides") -> AugmentationConfig:
        """A copy with single fields replaced: ``{"noise": {"p": 0.0}}``."""
        changes: dict[str, Any] = {}
        for section, values in overrides.items():
            if section not in _SECTIONS:
                msg = f"{where}: unknown section {section!r}. Allowed: {', '.join(_SECTIONS)}."
                raise ConfigError(msg)
            changes[section] = _replace_section(getattr(self, section), values, where=f"{where}.{section}")
        return dataclasses.replace(self, name=name or self.name, **changes)


def _jsonable(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _replace_section(current: Any, values: Any, *, where: str) -> Any:
    if not isinstance(values, dict):
        msg = f"{where}: expected an object of field values, got {values!r}."
        raise ConfigError(msg)
    names = {f.name: f for f in fields(current)}
    unknown = sorted(set(values) - set(names))
    if unknown:
        msg = f"{where}: unknown field(s) {', '.join(unknown)}. Allowed: {', '.join(names)}."
        raise ConfigError(msg)
    converted = {k: (tuple(v) if isinstance(v, list) else v) for k, v in values.items()}
    try:
        return dataclasses.replace(current, **converted)
    except ConfigError as exc:
        msg = f"{where}: {exc}"
        raise ConfigError(msg) from exc
    except TypeError as exc:
        msg = f"{where}: invalid value ({exc})."
        raise ConfigError(msg) from exc


PRESETS: Registry[AugmentationConfig] = Registry("augmentation preset")
PRESETS.add("default", AugmentationConfig(), aliases=("reference", "nnUNetTrainer"))
PRESETS.add("light", AugmentationConfig(
    name="light",
    noise=NoiseConfig(p=0.0), blur=BlurConfig(p=0.0), brightness=BrightnessConfig(p=0.0),
    contrast=ContrastConfig(p=0.0), lowres=LowResConfig(p=0.0), gamma_inverted=GammaConfig(p=0.0, invert=True),
    gamma=GammaConfig(p=0.0), cascade=CascadeConfig(p_binary_operator=0.0, p_remove_component=0.0),
))
PRESETS.add("none", AugmentationConfig(
    name="none",
    spatial=SpatialConfig(p_rotation=0.0, p_scaling=0.0),
    noise=NoiseConfig(p=0.0), blur=BlurConfig(p=0.0), brightness=BrightnessConfig(p=0.0),
    contrast=ContrastConfig(p=0.0), lowres=LowResConfig(p=0.0), gamma_inverted=GammaConfig(p=0.0, invert=True),
    gamma=GammaConfig(p=0.0), mirror=MirrorConfig(p_per_axis=0.0, axes=()),
    cascade=CascadeConfig(p_binary_operator=0.0, p_remove_component=0.0),
), aliases=("nnUNetTrainerNoDA",))


def preset(name: str) -> AugmentationConfig:
    """The preset registered as ``name`` (``default``, ``light``, ``none``); unknown names suggest close ones."""
    return PRESETS.get(name)


def load(spec: str | os.PathLike[str] | AugmentationConfig) -> AugmentationConfig:
    """Resolve ``--augmentation PRESET|FILE``: a config object, a preset name, or a JSON file path."""
    if isinstance(spec, AugmentationConfig):
        return spec
    text = os.fspath(spec)
    path = Path(text)
    if text in PRESETS:
        return preset(text)
    if path.suffix.lower() == ".json" or path.is_file():
        try:
            data = read_json(path, what="augmentation config")
        except SchemaError as exc:
            raise ConfigError(str(exc)) from exc
        return AugmentationConfig.from_dict(data, where=f"augmentation config {path}")
    return preset(text)  # raises ConfigError with did-you-mean suggestions
