"""The experiment planner: fingerprint + dataset spec + preset -> Plans (facts §3).

``plan_detailed`` orchestrates the small rule modules (spacing, topology, memory, patch_size, batch_size,
normalization) exactly as the reference planner chains them, and records every decision in a
:class:`~autounet.planning.explain.PlanningExplanation`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from autounet._log import get_logger
from autounet.errors import ConfigError, UsageError
from autounet.planning import explain as ex
from autounet.planning.batch_size import batch_size as decide_batch_size
from autounet.planning.memory import feature_map_size
from autounet.planning.normalization import normalization_components, resampling_components
from autounet.planning.patch_size import initial_patch_size, shrink_to_budget
from autounet.planning.presets import PRESETS, PlannerPreset, get_preset
from autounet.planning.spacing import fullres_target_spacing, median_resampled_shape, transpose_for
from autounet.planning.topology import PerAxis, Topology, pool_and_conv_props
from autounet.schemas._base import make_provenance
from autounet.schemas.fingerprint import Fingerprint
from autounet.schemas.plans import ConfigurationPlan, NetworkSpec, Plans, entries

log = get_logger(__name__)

CONFIGURATIONS = ("2d", "3d_lowres", "3d_fullres", "3d_cascade_fullres")
BASE_FEATURES = 32
MAX_FEATURES = {2: 512, 3: 320}
REF_BATCH_SIZE = {2: 12, 3: 2}
LOWRES_CREATION_THRESHOLD = 0.25
LOWRES_SPACING_FACTOR = 1.03
LOWRES_MIN_SIZE_RATIO = 2.0


@dataclass(frozen=True)
class DatasetFacts:
    """What the planner needs from ``dataset.json``.

    Attributes:
        dataset_name: ``DatasetXXX_Name``.
        channel_names: input channel names in channel order.
        num_label_keys: number of keys in ``labels`` (background, regions and ignore included; the reference's
            VRAM proxy uses this as the number of outputs).
        num_training: ``numTraining``.
        file_ending: image file ending.
    """

    dataset_name: str
    channel_names: tuple[str, ...]
    num_label_keys: int
    num_training: int
    file_ending: str

    @classmethod
    def from_spec(cls, spec: Any, *, dataset_name: str | None = None) -> DatasetFacts:
        """From a ``DatasetSpec`` or a ``dataset.json`` dict (reference keys; ``modality`` accepted as legacy)."""
        if isinstance(spec, Mapping):
            channels = spec.get("channel_names", spec.get("modality"))
            labels, num_training = spec.get("labels"), spec.get("numTraining")
            file_ending, name = spec.get("file_ending", ""), spec.get("name")
        else:
            channels, labels = spec.channel_names, spec.labels
            num_training = getattr(spec, "num_training", None)
            file_ending, name = getattr(spec, "file_ending", ""), getattr(spec, "name", None)
        if not channels or not labels or num_training is None:
            raise ConfigError("dataset.json needs channel_names, labels and numTraining for planning.")
        ordered = (channels[k] for k in sorted(channels, key=int)) if isinstance(channels, Mapping) else channels
        return cls(dataset_name=str(dataset_name or name or "Dataset"), channel_names=tuple(str(c) for c in ordered),
                   num_label_keys=len(labels), num_training=int(num_training), file_ending=str(file_ending))


@dataclass(frozen=True)
class PlanningResult:
    """The plans and the explanation of every decision."""

    plans: Plans
    explanation: ex.PlanningExplanation


@dataclass(frozen=True)
class _Budget:
    preset: PlannerPreset
    gpu_memory_gb: float
    num_inputs: int
    num_outputs: int

    def reference(self, ndim: int) -> float:
        value = self.preset.reference_value_2d if ndim == 2 else self.preset.reference_value_3d
        return value * (self.gpu_memory_gb / self.preset.reference_gb)


def plan(fingerprint: Fingerprint, spec: Any, *, preset: str = "default", gpu_memory_gb: float | None = None,
         plans_name: str | None = None, target_spacing: Sequence[float] | None = None,
         configurations: Iterable[str] | None = None, dataset_name: str | None = None,
         image_reader: str | None = None) -> Plans:
    """Plan every configuration for a dataset. See :func:`plan_detailed` (same arguments) for the explanation."""
    return plan_detailed(fingerprint, spec, preset=preset, gpu_memory_gb=gpu_memory_gb, plans_name=plans_name,
                         target_spacing=target_spacing, configurations=configurations, dataset_name=dataset_name,
                         image_reader=image_reader).plans


def plan_detailed(fingerprint: Fingerprint, spec: Any, *, preset: str = "default",
                  gpu_memory_gb: float | None = None, plans_name: str | None = None,
                  target_spacing: Sequence[float] | None = None, configurations: Iterable[str] | None = None,
                  dataset_name: str | None = None, image_reader: str | None = None) -> PlanningResult:
    """Plan a dataset with the rules of the reference planner named by ``preset``.

    Args:
        fingerprint: the dataset fingerprint.
        spec: the dataset spec (``DatasetSpec`` or a ``dataset.json`` dict).
        preset: ``default``, ``resenc``, ``resenc-m``, ``resenc-l`` or ``resenc-xl`` (or a reference class name).
        gpu_memory_gb: GPU memory target; a value other than the preset's needs a new ``plans_name``.
        plans_name: plans name (default: the preset's); must differ from every preset's name when
            ``gpu_memory_gb`` or ``target_spacing`` is customised.
        target_spacing: 3d_fullres target spacing (3 values, untransposed), used verbatim.
        configurations: restrict the output to these configurations (default: all that the rules create).
        dataset_name: ``DatasetXXX_Name`` (default: taken from the spec).
        image_reader: io reader name (default: the fingerprint's reader).

    Raises:
        ConfigError: unknown preset, bad override, or a budget that cannot be met.
        UsageError: a customised plan without a new plans name, or unknown configuration names.
    """
    chosen = get_preset(preset)
    facts = DatasetFacts.from_spec(spec, dataset_name=dataset_name)
    memory = _check_memory(chosen, gpu_memory_gb)
    name = _check_plans_name(chosen, plans_name, custom_memory=memory != chosen.gpu_memory_gb,
                             custom_spacing=target_spacing is not None)
    wanted = _check_configurations(configurations)
    if target_spacing is not None and (len(target_spacing) != 3 or min(float(v) for v in target_spacing) <= 0):
        msg = f"target spacing must be 3 positive numbers, got {tuple(target_spacing)}."
        raise ConfigError(msg)
    planner = _Planner(chosen, facts, fingerprint, _Budget(chosen, memory, len(facts.channel_names),
                                                           facts.num_label_keys),
                       plans_name=name, custom_spacing=target_spacing is not None)
    return planner.run(target_spacing, wanted, image_reader or fingerprint.image_reader or "")


def _check_memory(preset: PlannerPreset, gpu_memory_gb: float | None) -> float:
    if gpu_memory_gb is None:
        return float(preset.gpu_memory_gb)
    if not gpu_memory_gb > 0:
        msg = f"GPU memory target must be positive, got {gpu_memory_gb}."
        raise ConfigError(msg)
    return float(gpu_memory_gb)


def _check_plans_name(preset: PlannerPreset, plans_name: str | None, *, custom_memory: bool,
                      custom_spacing: bool) -> str:
    name = plans_name or preset.plans_name
    if not name or any(c in name for c in "/\\") or name.startswith("."):
        msg = f"invalid plans name {name!r}: use letters, digits, '_' or '-'."
        raise UsageError(msg)
    reserved = {PRESETS.get(p).plans_name for p in PRESETS}
    if (custom_memory or custom_spacing) and name in reserved:
        what = "--gpu-memory" if custom_memory else "--target-spacing"
        msg = (f"{what} changes the plans of preset {preset.name!r}; give them a new name with --plans "
               f"(not {name!r}, which belongs to a preset), so that the preset's plans are not silently replaced.")
        raise UsageError(msg)
    return name


def _check_configurations(configurations: Iterable[str] | None) -> tuple[str, ...]:
    if configurations is None:
        return CONFIGURATIONS
    wanted = tuple(configurations)
    unknown = [c for c in wanted if c not in CONFIGURATIONS]
    if unknown or not wanted:
        msg = f"unknown configuration(s) {', '.join(unknown) or '(none given)'}; the planner creates " \
              f"{', '.join(CONFIGURATIONS)}."
        raise UsageError(msg)
    if "3d_cascade_fullres" in wanted:  # the cascade needs both of its stages
        wanted = (*wanted, *(c for c in ("3d_lowres", "3d_fullres") if c not in wanted))
    return wanted


class _Planner:
    """One planning run: fixed preset, dataset facts and budget; caches VRAM estimates like the reference."""

    def __init__(self, preset: PlannerPreset, facts: DatasetFacts, fingerprint: Fingerprint, budget: _Budget, *,
                 plans_name: str, custom_spacing: bool) -> None:
        self.preset, self.facts, self.fingerprint, self.budget = preset, facts, fingerprint, budget
        self.plans_name = plans_name
        self.custom_spacing = custom_spacing
        self._cache: dict[tuple[tuple[int, ...], tuple[tuple[int, ...], ...]], int] = {}
        if fingerprint.num_channels not in (0, len(facts.channel_names)):
            msg = (f"the fingerprint has {fingerprint.num_channels} channel(s) but dataset.json names "
                   f"{len(facts.channel_names)}; re-run the fingerprint (--clean).")
            raise ConfigError(msg)

    # ---- identifiers -------------------------------------------------------------------------------------------
    def data_identifier(self, configuration: str) -> str:
        if self.custom_spacing:  # a custom target spacing must never share the default planner's data
            return f"{self.plans_name}_{configuration}"
        return self.preset.data_identifier(self.plans_name, configuration)

    # ---- network -----------------------------------------------------------------------------------------------
    def network_spec(self, topology: Topology) -> NetworkSpec:
        n, ndim = topology.n_stages, len(topology.patch_size)
        if n > len(self.preset.encoder_blocks):
            msg = (f"the patch {topology.patch_size} needs {n} stages but preset {self.preset.name!r} defines "
                   f"blocks for {len(self.preset.encoder_blocks)}.")
            raise ConfigError(msg)
        features = tuple(min(MAX_FEATURES[ndim], BASE_FEATURES * 2 ** s) for s in range(n))
        return NetworkSpec(name=self.preset.network, features_per_stage=features,
                           kernel_sizes=topology.kernel_sizes, strides=topology.strides,
                           blocks_per_stage=self.preset.encoder_blocks[:n],
                           convs_per_stage_decoder=self.preset.decoder_convs[:n - 1])

    def estimate(self, topology: Topology) -> int:
        key = (topology.patch_size, topology.strides)
        if key not in self._cache:
            net = self.network_spec(topology)
            self._cache[key] = feature_map_size(
                net.name, patch_size=topology.patch_size, strides=net.strides,
                features_per_stage=net.features_per_stage, blocks_per_stage=net.blocks_per_stage,
                convs_per_stage_decoder=net.convs_per_stage_decoder, num_outputs=self.budget.num_outputs)
        return self._cache[key]

    # ---- one configuration -------------------------------------------------------------------------------------
    def configuration(self, name: str, spacing: PerAxis, median_shape: PerAxis,
                      data_identifier: str, dataset_voxels: float
                      ) -> tuple[ConfigurationPlan, ex.ConfigurationExplanation]:
        """Plan one configuration (the reference's ``get_plans_for_configuration``)."""
        if not all(s > 0 for s in spacing):
            msg = f"configuration {name!r}: spacing must be > 0, got {tuple(spacing)}."
            raise ConfigError(msg)
        ndim = len(spacing)
        initial = initial_patch_size(spacing, median_shape)
        budget = self.budget.reference(ndim)
        history = shrink_to_budget(spacing, median_shape, pool_and_conv_props(spacing, initial), self.estimate,
                                   budget=budget, ref_batch_size=REF_BATCH_SIZE[ndim],
                                   batch_corrected=self.preset.batch_corrected_shrink)
        topology, final = history[-1]
        batch = decide_batch_size(budget=budget, estimate=final.estimate, ref_batch_size=REF_BATCH_SIZE[ndim],
                                  dataset_voxels=dataset_voxels, patch_size=topology.patch_size,
                                  max_dataset_covered=self.preset.max_dataset_covered)
        norms = normalization_components(self.facts.channel_names,
                                         self.fingerprint.median_relative_size_after_cropping)
        resampling = resampling_components()
        config = ConfigurationPlan(
            name=name, data_identifier=data_identifier, preprocessor="default", batch_size=batch.batch_size,
            patch_size=topology.patch_size, median_image_size_in_voxels=tuple(float(m) for m in median_shape),
            spacing=tuple(float(s) for s in spacing), normalization=norms, network=self.network_spec(topology),
            batch_dice=False, resampling_data=resampling["resampling_data"],
            resampling_seg=resampling["resampling_seg"],
            resampling_probabilities=resampling["resampling_probabilities"])
        explanation = ex.ConfigurationExplanation(
            name=name, spacing=config.spacing, median_shape=config.median_image_size_in_voxels,
            initial_patch_size=initial, budget=budget, ref_batch_size=REF_BATCH_SIZE[ndim],
            batch_corrected=self.preset.batch_corrected_shrink, steps=tuple(step for _, step in history),
            n_stages=topology.n_stages, strides=topology.strides, kernel_sizes=topology.kernel_sizes,
            dataset_voxels=dataset_voxels, batch=batch, normalization=tuple(c.name for c in norms),
            use_mask_for_norm=tuple(bool(c.params["use_mask_for_norm"]) for c in norms),
            median_relative_size_after_cropping=self.fingerprint.median_relative_size_after_cropping)
        return config, explanation

    # ---- lowres search -----------------------------------------------------------------------------------------
    def lowres(self, fullres: ConfigurationPlan, median_shape: np.ndarray
               ) -> tuple[tuple[ConfigurationPlan, ex.ConfigurationExplanation] | None, list[ex.LowresStep], str]:
        """The 3d_lowres search (facts §3.9); returns the surviving plan (or None), the steps and the outcome."""
        fullres_spacing = np.asarray(fullres.spacing, dtype=np.float64)
        median_voxels = np.prod(median_shape, dtype=np.float64)
        patch_voxels: np.float64 | np.int64 = np.prod(fullres.patch_size, dtype=np.float64)
        spacing = fullres_spacing.copy()
        found = None
        steps: list[ex.LowresStep] = []
        while patch_voxels / median_voxels < LOWRES_CREATION_THRESHOLD:
            ratio = max(spacing) / spacing
            if np.any(ratio > 2):
                spacing[ratio > 2] *= LOWRES_SPACING_FACTOR
            else:
                spacing *= LOWRES_SPACING_FACTOR
            median_voxels = np.prod(fullres_spacing / spacing * median_shape, dtype=np.float64)
            shape = tuple(round(float(v)) for v in fullres_spacing / spacing * median_shape)
            found = self.configuration("3d_lowres", spacing.copy(), shape, self.data_identifier("3d_lowres"),
                                       float(np.prod(median_voxels) * self.facts.num_training))
            patch_voxels = np.prod(found[0].patch_size, dtype=np.int64)
            steps.append(ex.LowresStep(tuple(float(s) for s in spacing), shape, found[0].patch_size,
                                       float(patch_voxels / median_voxels)))
        full_voxels = np.prod(median_shape, dtype=np.float64)
        if full_voxels / median_voxels < LOWRES_MIN_SIZE_RATIO:
            if not steps:
                return None, steps, "not needed: the 3d_fullres patch covers >= 25% of the median image"
            return None, steps, (f"dropped: its median image is only {full_voxels / median_voxels:.3g}x smaller "
                                 "than 3d_fullres (< 2)")
        return found, steps, f"created at spacing {tuple(round(float(s), 6) for s in spacing)} (cascade enabled)"

    # ---- whole dataset -----------------------------------------------------------------------------------------
    def run(self, target_spacing: Sequence[float] | None, wanted: tuple[str, ...], image_reader: str
            ) -> PlanningResult:
        fp = self.fingerprint
        spacings, shapes = np.asarray(fp.spacings, dtype=np.float64), np.asarray(fp.shapes_after_crop)
        decision = fullres_target_spacing(spacings, shapes, override=target_spacing)
        forward, backward = transpose_for(decision.target)
        target = np.asarray(decision.target, dtype=np.float64)
        median_shape = median_resampled_shape(spacings, shapes, target)[list(forward)]
        fullres_spacing = target[list(forward)]
        dataset_voxels = float(np.prod(median_shape, dtype=np.float64) * self.facts.num_training)
        configs: dict[str, ConfigurationPlan] = {}
        explained: list[ex.ConfigurationExplanation] = []
        lowres_steps: list[ex.LowresStep] = []
        outcome = "not applicable: 2D data has no 3D configurations"
        if median_shape[0] != 1:
            fullres, fullres_ex = self.configuration("3d_fullres", fullres_spacing, median_shape,
                                                     self.data_identifier("3d_fullres"), dataset_voxels)
            lowres, lowres_steps, outcome = self.lowres(fullres, median_shape)
            configs["3d_fullres"] = _replace(fullres, batch_dice=lowres is not None)
            explained.append(fullres_ex)
            if lowres is not None:
                configs["3d_lowres"] = _replace(lowres[0], next_stage=("3d_cascade_fullres",))
                explained.append(lowres[1])
        two_d, two_d_ex = self.configuration("2d", fullres_spacing[1:], median_shape[1:],
                                             self.data_identifier("2d"), dataset_voxels)
        configs["2d"] = _replace(two_d, batch_dice=True)
        explained.insert(0, two_d_ex)
        plans = self._plans(configs, wanted, forward, backward, image_reader)
        explanation = ex.PlanningExplanation(
            preset=self.preset.name, plans_name=self.plans_name, gpu_memory_gb=self.budget.gpu_memory_gb,
            spacing=decision, transpose_forward=forward,
            median_shape_transposed=tuple(float(m) for m in median_shape), num_training=self.facts.num_training,
            configurations=tuple(c for c in explained if c.name in plans.configurations),
            lowres_steps=tuple(lowres_steps), lowres_outcome=outcome,
            notes=tuple(_skipped_notes(wanted, plans)))
        return PlanningResult(plans=plans, explanation=explanation)

    def _plans(self, configs: dict[str, ConfigurationPlan], wanted: tuple[str, ...], forward: tuple[int, ...],
               backward: tuple[int, ...], image_reader: str) -> Plans:
        out: dict[str, dict[str, Any]] = {}
        for name in CONFIGURATIONS:  # reference order: 2d, 3d_lowres, 3d_fullres, 3d_cascade_fullres
            if name == "3d_cascade_fullres" and "3d_lowres" in configs:
                body: dict[str, Any] | None = {"inherits_from": "3d_fullres", "previous_stage": "3d_lowres"}
            else:
                body = configs[name].to_dict() if name in configs else None
            if body is not None and name in wanted:
                out[name] = body
        if not out:
            msg = f"none of the requested configurations ({', '.join(wanted)}) applies to this dataset."
            raise UsageError(msg)
        fp = self.fingerprint
        spacings, shapes = np.asarray(fp.spacings, dtype=np.float64), np.asarray(fp.shapes_after_crop)
        provenance = make_provenance(f"autounet.planning:{self.preset.name}", upstream_sha256=fp.sha256())
        provenance["gpu_memory_gb"] = self.budget.gpu_memory_gb
        return Plans(
            dataset_name=self.facts.dataset_name, plans_name=self.plans_name, planner=self.preset.name,
            original_median_spacing_after_transp=tuple(float(v) for v in np.median(spacings, 0)[list(forward)]),
            original_median_shape_after_transp=tuple(int(round(v)) for v in np.median(shapes, 0)[list(forward)]),
            image_reader_writer=image_reader, transpose_forward=forward, transpose_backward=backward,
            foreground_intensity_properties_per_channel={
                str(i): p.to_dict() for i, p in enumerate(fp.foreground_intensity_properties_per_channel)},
            configurations=entries(out), provenance=provenance)


def _replace(config: ConfigurationPlan, **changes: Any) -> ConfigurationPlan:
    return dataclasses.replace(config, **changes)


def _skipped_notes(wanted: tuple[str, ...], plans: Plans) -> list[str]:
    return [f"note: {name} was requested but the rules do not create it for this dataset"
            for name in wanted if name not in plans.configurations and wanted != CONFIGURATIONS]
