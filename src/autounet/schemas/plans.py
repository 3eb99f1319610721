"""Plans: the typed, versioned record of every setting the planner chose. One module reads and writes them.

A plans file holds dataset-level facts (median spacing/shape, transpose, reader) plus named configurations.
Configurations are stored as written (:class:`ConfigurationEntry`, a typed dict whose keys are all optional) so
that users can add ``{"inherits_from": "3d_fullres", "batch_size": 16}`` by hand, exactly as with the reference;
every entry is type-checked when the file is read, and :meth:`Plans.configuration` resolves inheritance (a shallow
update: nested settings are replaced, not merged) into a validated :class:`ConfigurationPlan` (validated once per
distinct content, then cached).

Components (normalization, resampling, network) are named through registries, never by import path. The reader of
plans files that also accepts the reference's ``nnUNetPlans.json`` is ``autounet.planning.store.read_plans_file``
(the conversion needs the planner's presets); :func:`load_plans` reads only this format.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Mapping
from typing import Any, ClassVar, cast

from pydantic import Field, field_validator, model_validator
from pydantic.dataclasses import dataclass
from typing_extensions import TypedDict

from autounet.errors import PlansError, SchemaError
from autounet.names import check_name
from autounet.schemas._base import (
    RECORD_CONFIG,
    dump,
    header_schema,
    json_schema,
    read_json,
    save_record,
    unwrap,
    validate,
    wrap,
)
from autounet.workspace import DEFAULT_PLANS_NAME as DEFAULT_PLANS_NAME

SCHEMA = "autounet/plans"
SCHEMA_VERSION = 1


@dataclass(frozen=True, config=RECORD_CONFIG)
class ComponentSpec:
    """A registry-named component with its parameters, e.g. ``{"name": "zscore", "params": {...}}``."""

    name: str
    params: dict[str, Any] = Field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "params": dict(self.params)}

    @classmethod
    def from_dict(cls, data: Any, *, where: str) -> ComponentSpec:
        if not isinstance(data, dict):
            msg = f"{where}: expected {{'name': ..., 'params': {{...}}}}, got {data!r}."
            raise SchemaError(msg)
        return validate(cls, {**data, "params": data.get("params") or {}}, where=where)


@dataclass(frozen=True, config=RECORD_CONFIG)
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

    @model_validator(mode="after")
    def _stage_counts(self) -> NetworkSpec:
        n = len(self.features_per_stage)
        lengths = {len(self.kernel_sizes), len(self.strides), len(self.blocks_per_stage)}
        if lengths != {n} or len(self.convs_per_stage_decoder) != n - 1:
            msg = (f"network {self.name!r}: inconsistent stage counts (features {n}, kernels {len(self.kernel_sizes)},"
                   f" strides {len(self.strides)}, blocks {len(self.blocks_per_stage)},"
                   f" decoder {len(self.convs_per_stage_decoder)}; decoder must have one fewer)")
            raise ValueError(msg)
        return self

    @property
    def n_stages(self) -> int:
        return len(self.features_per_stage)

    @property
    def ndim(self) -> int:
        return len(self.kernel_sizes[0])

    def to_dict(self) -> dict[str, Any]:
        return dump(self)

    @classmethod
    def from_dict(cls, data: Any, *, where: str) -> NetworkSpec:
        if not isinstance(data, dict):
            msg = f"{where}: expected a network object, got {data!r}."
            raise SchemaError(msg)
        return validate(cls, data, where=where)


@dataclass(frozen=True, config=RECORD_CONFIG)
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

    _OMIT_EMPTY: ClassVar[tuple[str, ...]] = ("next_stage", "previous_stage")

    @field_validator("next_stage", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        return () if value is None else (value,) if isinstance(value, str) else value

    @model_validator(mode="after")
    def _shapes(self) -> ConfigurationPlan:
        if self.batch_size < 1:
            msg = f"configuration {self.name!r}: batch_size must be >= 1, got {self.batch_size}"
            raise ValueError(msg)
        if len(self.patch_size) not in (2, 3) or len(self.spacing) != len(self.patch_size):
            msg = (f"configuration {self.name!r}: patch_size {self.patch_size} and spacing {self.spacing} must both"
                   " have 2 or 3 entries")
            raise ValueError(msg)
        names = ((self.name, "configuration name"), (self.data_identifier, "data_identifier"),
                 *((s, "next_stage") for s in self.next_stage),
                 *(((self.previous_stage, "previous_stage"),) if self.previous_stage else ()))
        for value, what in names:  # they name files and folders
            check_name(value, what=what, where=f"configuration {self.name!r}", error=SchemaError)
        return self

    @property
    def ndim(self) -> int:
        """2 for the 2d configuration, 3 otherwise."""
        return len(self.patch_size)

    def to_dict(self) -> dict[str, Any]:
        """Serialisable dict (without ``name``; the name is the key in the plans)."""
        out = dump(self, omit_empty=self._OMIT_EMPTY)
        del out["name"]
        return out

    @classmethod
    def from_dict(cls, name: str, data: dict[str, Any]) -> ConfigurationPlan:
        return validate(cls, {**data, "name": name}, where=f"configuration {name!r}")


class NetworkEntry(TypedDict, total=False):
    """A network as written in a plans file (see :class:`NetworkSpec`)."""

    __pydantic_config__ = RECORD_CONFIG  # type: ignore[misc]

    name: str
    features_per_stage: list[int]
    kernel_sizes: list[list[int]]
    strides: list[list[int]]
    blocks_per_stage: list[int]
    convs_per_stage_decoder: list[int]
    conv_bias: bool
    norm: str
    nonlin: str


class ComponentEntry(TypedDict, total=False):
    """A component as written in a plans file (see :class:`ComponentSpec`)."""

    __pydantic_config__ = RECORD_CONFIG  # type: ignore[misc]

    name: str
    params: dict[str, Any]


class ConfigurationEntry(TypedDict, total=False):
    """One configuration as written in a plans file: every key of :class:`ConfigurationPlan` (except ``name``)
    plus ``inherits_from``; all optional, because an entry may inherit the rest."""

    __pydantic_config__ = RECORD_CONFIG  # type: ignore[misc]

    inherits_from: str
    data_identifier: str
    preprocessor: str
    batch_size: int
    patch_size: list[int]
    median_image_size_in_voxels: list[float]
    spacing: list[float]
    normalization: list[ComponentEntry]
    resampling_data: ComponentEntry
    resampling_seg: ComponentEntry
    resampling_probabilities: ComponentEntry
    network: NetworkEntry
    batch_dice: bool
    next_stage: list[str] | str
    previous_stage: str | None


def entries(configurations: Mapping[str, Mapping[str, Any]]) -> dict[str, ConfigurationEntry]:
    """Plain configuration dicts as :class:`ConfigurationEntry` values (checked when the ``Plans`` is built)."""
    return {name: cast(ConfigurationEntry, dict(entry)) for name, entry in configurations.items()}


@dataclass(frozen=True, config=RECORD_CONFIG)
class Plans:
    """A plans file. ``configurations`` maps names to configuration entries as written (possibly inheriting)."""

    dataset_name: str
    plans_name: str
    planner: str
    original_median_spacing_after_transp: tuple[float, ...]
    original_median_shape_after_transp: tuple[int, ...]
    image_reader_writer: str
    transpose_forward: tuple[int, ...]
    transpose_backward: tuple[int, ...]
    foreground_intensity_properties_per_channel: dict[str, dict[str, float]]
    configurations: dict[str, ConfigurationEntry]
    provenance: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _safe_names(self) -> Plans:
        for value, what in ((self.plans_name, "plans_name"), *((k, "configuration name") for k in self.configurations)):
            check_name(value, what=what, where=f"plans {self.plans_name!r}", error=SchemaError)  # files, folders
        return self

    def configuration_names(self) -> list[str]:
        """Configuration names in file order."""
        return list(self.configurations)

    def configuration(self, name: str) -> ConfigurationPlan:
        """Resolve ``name`` (following ``inherits_from``) into a validated :class:`ConfigurationPlan`."""
        return _typed_configuration(name, json.dumps(self.resolved_dict(name), sort_keys=True))

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
            parent = dict(self.configurations[current]).get("inherits_from")
            current = str(parent) if parent is not None else None
        resolved: dict[str, Any] = {}
        for config_name in reversed(chain):
            resolved.update({k: v for k, v in dict(self.configurations[config_name]).items() if k != "inherits_from"})
        return resolved

    def to_dict(self) -> dict[str, Any]:
        body = dump(self)
        del body["provenance"]
        return wrap(SCHEMA, SCHEMA_VERSION, body, provenance=self.provenance)

    @classmethod
    def from_dict(cls, data: Any, *, where: str = "plans") -> Plans:
        """Validate a plans dict of this format; every configuration is resolved and validated here."""
        data = unwrap(data, schema=SCHEMA, version=SCHEMA_VERSION, where=where)
        del data["schema"], data["schema_version"]
        data["provenance"] = data.get("provenance") or {}
        plans = validate(cls, data, where=where)
        for name in plans.configurations:  # cycles, unknown parents and bad values fail on load
            plans.configuration(name)
        return plans


@functools.lru_cache(maxsize=512)
def _typed_configuration(name: str, resolved_json: str) -> ConfigurationPlan:
    return ConfigurationPlan.from_dict(name, json.loads(resolved_json))


def plans_json_schema() -> dict[str, Any]:
    """JSON Schema of a plans file."""
    return header_schema(json_schema(Plans), schema=SCHEMA, version=SCHEMA_VERSION)


def load_plans(path: str | os.PathLike[str]) -> Plans:
    """Read and validate a plans file."""
    return Plans.from_dict(read_json(path, what="Plans file"), where=f"plans file {os.fspath(path)}")


def save_plans(path: str | os.PathLike[str], plans: Plans) -> None:
    """Write a plans file atomically."""
    save_record(path, plans.to_dict())

