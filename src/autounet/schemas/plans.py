"""Plans: the typed, versioned record of every setting the planner chose. One module reads and writes them.

A plans file holds dataset-level facts (median spacing/shape, transpose, reader) plus named configurations.
Configurations are stored as plain dicts so that users can add ``{"inherits_from": "3d_fullres", "batch_size": 16}``
by hand, exactly as with the reference; :meth:`Plans.configuration` resolves inheritance (a shallow update: nested
settings are replaced, not merged) and validates the result into a :class:`ConfigurationPlan`.

Components (normalization, resampling, network) are named through registries, never by import path.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from autounet.errors import PlansError, SchemaError
from autounet.names import check_name
from autounet.schemas._base import check_keys, read_json, save_record, unwrap, wrap

SCHEMA = "autounet/plans"
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class ComponentSpec:
    """A registry-named component with its parameters, e.g. ``{"name": "zscore", "params": {...}}``."""

    name: str
    params: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "params": dict(self.params)}

    @classmethod
    def from_dict(cls, data: Any, *, where: str) -> ComponentSpec:
        if not isinstance(data, dict):
            msg = f"{where}: expected {{'name': ..., 'params': {{...}}}}, got {data!r}."
            raise SchemaError(msg)
        check_keys(data, required=("name",), allowed=("params",), where=where)
        return cls(name=str(data["name"]), params=dict(data.get("params") or {}))


@dataclass(frozen=True)
class NetworkSpec:
    """Topology of a U-Net as planned. ``name`` is a network registry name (``plain_unet``, ``resenc_unet``).

    ``blocks_per_stage`` is the number of convolutions per encoder stage for ``plain_unet`` and the number of
    residual blocks per encoder stage for ``resenc_unet``. Kernel sizes and strides have one entry per stage;
    the first stride is all ones.
    """

    name: str
    features_per_stage: tuple[int, ...]
    kernel_sizes: tuple[tuple[int, ...], ...]
    strides: tuple[tuple[int, ...], ...]
    blocks_per_stage: tuple[int, ...]
    convs_per_stage_decoder: tuple[int, ...]
    conv_bias: bool = True
    norm: str = "instance"
    nonlin: str = "leaky_relu"

    def __post_init__(self) -> None:
        n = len(self.features_per_stage)
        lengths = {len(self.kernel_sizes), len(self.strides), len(self.blocks_per_stage)}
        if lengths != {n} or len(self.convs_per_stage_decoder) != n - 1:
            msg = (f"network {self.name!r}: inconsistent stage counts (features {n}, kernels {len(self.kernel_sizes)},"
                   f" strides {len(self.strides)}, blocks {len(self.blocks_per_stage)},"
                   f" decoder {len(self.convs_per_stage_decoder)}; decoder must have one fewer).")
            raise SchemaError(msg)

    @property
    def n_stages(self) -> int:
        return len(self.features_per_stage)

    @property
    def ndim(self) -> int:
        return len(self.kernel_sizes[0])

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: _listify(v) for k, v in d.items()}

    @classmethod
    def from_dict(cls, data: Any, *, where: str) -> NetworkSpec:
        names = [f.name for f in fields(cls)]
        if not isinstance(data, dict):
            msg = f"{where}: expected a network object, got {data!r}."
            raise SchemaError(msg)
        check_keys(data, required=names[:6], allowed=names, where=where)
        kw = dict(data)
        kw["features_per_stage"] = tuple(int(x) for x in kw["features_per_stage"])
        kw["kernel_sizes"] = tuple(tuple(int(k) for k in ks) for ks in kw["kernel_sizes"])
        kw["strides"] = tuple(tuple(int(s) for s in st) for st in kw["strides"])
        kw["blocks_per_stage"] = tuple(int(x) for x in kw["blocks_per_stage"])
        kw["convs_per_stage_decoder"] = tuple(int(x) for x in kw["convs_per_stage_decoder"])
        return cls(**kw)


@dataclass(frozen=True)
class ConfigurationPlan:
    """One resolved configuration (``2d``, ``3d_fullres``, ``3d_lowres``, ``3d_cascade_fullres`` or a user's).

    Attributes:
        name: configuration name.
        data_identifier: preprocessed sub-folder (shared by configurations that inherit it).
        preprocessor: preprocessor registry name.
        batch_size: total batch size (split across DDP ranks).
        patch_size: training patch size, 2 or 3 entries.
        median_image_size_in_voxels: median shape at this configuration's spacing.
        spacing: target spacing (transposed axis order), 2 or 3 entries.
        normalization: one component per input channel (``ct``, ``zscore``, ``none``, ``rescale_to_0_1``,
            ``rgb_to_0_1``), each with params ``{"use_mask_for_norm": bool}``.
        resampling_data / resampling_seg / resampling_probabilities: resampling components.
        network: the U-Net topology.
        batch_dice: whether the Dice loss pools over the batch.
        next_stage: configurations that use this one's predictions (lowres → cascade).
        previous_stage: the configuration whose predictions this one takes as input (cascade).
    """

    name: str
    data_identifier: str
    preprocessor: str
    batch_size: int
    patch_size: tuple[int, ...]
    median_image_size_in_voxels: tuple[float, ...]
    spacing: tuple[float, ...]
    normalization: tuple[ComponentSpec, ...]
    resampling_data: ComponentSpec
    resampling_seg: ComponentSpec
    resampling_probabilities: ComponentSpec
    network: NetworkSpec
    batch_dice: bool
    next_stage: tuple[str, ...] = ()
    previous_stage: str | None = None

    def __post_init__(self) -> None:
        if self.batch_size < 1:
            msg = f"configuration {self.name!r}: batch_size must be >= 1, got {self.batch_size}."
            raise SchemaError(msg)
        if len(self.patch_size) not in (2, 3) or len(self.spacing) != len(self.patch_size):
            msg = (f"configuration {self.name!r}: patch_size {self.patch_size} and spacing {self.spacing} must both"
                   " have 2 or 3 entries.")
            raise SchemaError(msg)

    @property
    def ndim(self) -> int:
        """2 for the 2d configuration, 3 otherwise."""
        return len(self.patch_size)

    def to_dict(self) -> dict[str, Any]:
        """Serialisable dict (without ``name``; the name is the key in the plans)."""
        out: dict[str, Any] = {
            "data_identifier": self.data_identifier,
            "preprocessor": self.preprocessor,
            "batch_size": self.batch_size,
            "patch_size": list(self.patch_size),
            "median_image_size_in_voxels": list(self.median_image_size_in_voxels),
            "spacing": list(self.spacing),
            "normalization": [c.to_dict() for c in self.normalization],
            "resampling_data": self.resampling_data.to_dict(),
            "resampling_seg": self.resampling_seg.to_dict(),
            "resampling_probabilities": self.resampling_probabilities.to_dict(),
            "network": self.network.to_dict(),
            "batch_dice": self.batch_dice,
        }
        if self.next_stage:
            out["next_stage"] = list(self.next_stage)
        if self.previous_stage is not None:
            out["previous_stage"] = self.previous_stage
        return out

    @classmethod
    def from_dict(cls, name: str, data: dict[str, Any]) -> ConfigurationPlan:
        where = f"configuration {name!r}"
        required = ("data_identifier", "preprocessor", "batch_size", "patch_size", "median_image_size_in_voxels",
                    "spacing", "normalization", "resampling_data", "resampling_seg", "resampling_probabilities",
                    "network", "batch_dice")
        check_keys(data, required=required, allowed=("next_stage", "previous_stage"), where=where)
        next_stage = data.get("next_stage") or ()
        next_stage = (next_stage,) if isinstance(next_stage, str) else tuple(next_stage)
        for value, what in ((name, "configuration name"), (data["data_identifier"], "data_identifier"),
                            *((s, "next_stage") for s in next_stage),
                            *(((data["previous_stage"], "previous_stage"),) if data.get("previous_stage") else ())):
            check_name(value, what=what, where=where, error=SchemaError)  # they name folders
        return cls(
            name=name,
            data_identifier=str(data["data_identifier"]),
            preprocessor=str(data["preprocessor"]),
            batch_size=int(data["batch_size"]),
            patch_size=tuple(int(x) for x in data["patch_size"]),
            median_image_size_in_voxels=tuple(float(x) for x in data["median_image_size_in_voxels"]),
            spacing=tuple(float(x) for x in data["spacing"]),
            normalization=tuple(ComponentSpec.from_dict(c, where=f"{where}.normalization")
                                for c in data["normalization"]),
            resampling_data=ComponentSpec.from_dict(data["resampling_data"], where=f"{where}.resampling_data"),
            resampling_seg=ComponentSpec.from_dict(data["resampling_seg"], where=f"{where}.resampling_seg"),
            resampling_probabilities=ComponentSpec.from_dict(data["resampling_probabilities"],
                                                             where=f"{where}.resampling_probabilities"),
            network=NetworkSpec.from_dict(data["network"], where=f"{where}.network"),
            batch_dice=bool(data["batch_dice"]),
            next_stage=next_stage,
            previous_stage=data.get("previous_stage"),
        )


@dataclass(frozen=True)
class Plans:
    """A plans file. ``configurations`` maps names to raw (possibly inheriting) configuration dicts."""

    dataset_name: str
    plans_name: str
    planner: str
    original_median_spacing_after_transp: tuple[float, ...]
    original_median_shape_after_transp: tuple[int, ...]
    image_reader_writer: str
    transpose_forward: tuple[int, ...]
    transpose_backward: tuple[int, ...]
    foreground_intensity_properties_per_channel: dict[str, dict[str, float]]
    configurations: dict[str, dict[str, Any]]
    provenance: dict[str, Any] = field(default_factory=dict)

    def configuration_names(self) -> list[str]:
        """Configuration names in file order."""
        return list(self.configurations)

    def configuration(self, name: str) -> ConfigurationPlan:
        """Resolve ``name`` (following ``inherits_from``) into a validated :class:`ConfigurationPlan`."""
        return ConfigurationPlan.from_dict(name, self.resolved_dict(name))

    def resolved_dict(self, name: str) -> dict[str, Any]:
        """The configuration dict of ``name`` with inheritance applied (shallow update, as the reference)."""
        chain: list[str] = []
        current: str | None = name
        while current is not None:
            if current not in self.configurations:
                where = f"inherited by {chain[-1]!r}" if chain else "requested"
                msg = (f"Configuration {current!r} ({where}) is not in plans {self.plans_name!r}. "
                       f"Available: {', '.join(self.configurations)}.")
                raise PlansError(msg)
            if current in chain:
                msg = f"Circular inheritance in plans {self.plans_name!r}: {' -> '.join([*chain, current])}."
                raise PlansError(msg)
            chain.append(current)
            parent = self.configurations[current].get("inherits_from")
            current = str(parent) if parent is not None else None
        resolved: dict[str, Any] = {}
        for config_name in reversed(chain):
            resolved.update({k: v for k, v in self.configurations[config_name].items() if k != "inherits_from"})
        return resolved

    def to_dict(self) -> dict[str, Any]:
        body = {
            "dataset_name": self.dataset_name,
            "plans_name": self.plans_name,
            "planner": self.planner,
            "original_median_spacing_after_transp": list(self.original_median_spacing_after_transp),
            "original_median_shape_after_transp": list(self.original_median_shape_after_transp),
            "image_reader_writer": self.image_reader_writer,
            "transpose_forward": list(self.transpose_forward),
            "transpose_backward": list(self.transpose_backward),
            "foreground_intensity_properties_per_channel": self.foreground_intensity_properties_per_channel,
            "configurations": self.configurations,
        }
        return wrap(SCHEMA, SCHEMA_VERSION, body, provenance=self.provenance)

    @classmethod
    def from_dict(cls, data: Any, *, where: str = "plans") -> Plans:
        data = unwrap(data, schema=SCHEMA, version=SCHEMA_VERSION, where=where)
        data.pop("schema")
        data.pop("schema_version")
        provenance = data.pop("provenance", {})
        names = [f.name for f in fields(cls) if f.name != "provenance"]
        check_keys(data, required=names, allowed=(), where=where)
        for value, what in ((data["plans_name"], "plans_name"), *((k, "configuration name")
                                                                  for k in data["configurations"])):
            check_name(value, what=what, where=where, error=SchemaError)  # they name files and folders
        plans = cls(
            dataset_name=str(data["dataset_name"]),
            plans_name=str(data["plans_name"]),
            planner=str(data["planner"]),
            original_median_spacing_after_transp=tuple(float(x) for x in data["original_median_spacing_after_transp"]),
            original_median_shape_after_transp=tuple(int(x) for x in data["original_median_shape_after_transp"]),
            image_reader_writer=str(data["image_reader_writer"]),
            transpose_forward=tuple(int(x) for x in data["transpose_forward"]),
            transpose_backward=tuple(int(x) for x in data["transpose_backward"]),
            foreground_intensity_properties_per_channel=dict(data["foreground_intensity_properties_per_channel"]),
            configurations={str(k): dict(v) for k, v in data["configurations"].items()},
            provenance=dict(provenance),
        )
        for name in plans.configurations:
            plans.resolved_dict(name)  # cycles and unknown parents fail on load, not at first use
        return plans


def load_plans(path: str | os.PathLike[str]) -> Plans:
    """Read and validate a plans file."""
    return Plans.from_dict(read_json(path, what="Plans file"), where=f"plans file {os.fspath(path)}")


def save_plans(path: str | os.PathLike[str], plans: Plans) -> None:
    """Write a plans file atomically."""
    save_record(path, plans.to_dict())


def _listify(value: Any) -> Any:
    if isinstance(value, tuple | list):
        return [_listify(v) for v in value]
    return value
