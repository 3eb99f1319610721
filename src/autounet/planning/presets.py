"""Planner presets: the default planner and the residual-encoder presets M/L/XL, as configuration values.

Each preset carries the constants of one reference planner class (facts §3.11, Appendix A). Variants are data, not
subclasses: the planner reads these fields and nothing else distinguishes the presets.
"""

from __future__ import annotations

from dataclasses import dataclass

from autounet.registry import Registry
from autounet.workspace import DEFAULT_PLANS_NAME

PLAIN_ENCODER_BLOCKS = (2,) * 14
PLAIN_DECODER_CONVS = (2,) * 13
RESENC_ENCODER_BLOCKS = (1, 3, 4, 6, 6, 6, 6, 6, 6, 6, 6, 6, 6)
RESENC_DECODER_CONVS = (1,) * 12


@dataclass(frozen=True)
class PlannerPreset:
    """Constants of one planner.

    Attributes:
        name: preset name (``default``, ``resenc``, ``resenc-m``, ``resenc-l``, ``resenc-xl``).
        reference_class: the reference planner class with the same behaviour (written as ``experiment_planner_used``).
        plans_name: default plans name.
        network: network registry name (``plain_unet`` or ``resenc_unet``).
        gpu_memory_gb: default GPU memory target in GB.
        reference_gb: the memory the reference values correspond to.
        reference_value_3d: feature-map budget (VRAM proxy) at ``reference_gb`` for 3D configurations.
        reference_value_2d: the same for 2D.
        max_dataset_covered: fraction of the dataset one batch may cover (batch-size cap).
        encoder_blocks: convolutions (plain) or residual blocks (ResEnc) per encoder stage, sliced to the stages.
        decoder_convs: convolutions per decoder stage, sliced to ``n_stages - 1``.
        batch_corrected_shrink: shrink while ``estimate / ref_bs * 2 > budget`` (default planner) instead of
            ``estimate > budget`` (ResEnc planners).
        shares_default_data: 2d/3d_fullres reuse the default planner's preprocessed data (``nnUNetPlans_<cfg>``).
    """

    name: str
    reference_class: str
    plans_name: str
    network: str
    gpu_memory_gb: float
    reference_gb: float
    reference_value_3d: float
    reference_value_2d: float
    max_dataset_covered: float
    encoder_blocks: tuple[int, ...]
    decoder_convs: tuple[int, ...]
    batch_corrected_shrink: bool
    shares_default_data: bool

    def data_identifier(self, plans_name: str, configuration: str) -> str:
        """Preprocessed sub-folder of ``configuration`` under plans ``plans_name`` (facts §3.11, §3.12)."""
        if self.shares_default_data and configuration in ("2d", "3d_fullres"):
            return f"nnUNetPlans_{configuration}"
        return f"{plans_name}_{configuration}"


PRESETS: Registry[PlannerPreset] = Registry("planner preset")

_DEFAULT = PlannerPreset(
    name="default", reference_class="ExperimentPlanner", plans_name=DEFAULT_PLANS_NAME, network="plain_unet",
    gpu_memory_gb=8, reference_gb=8, reference_value_3d=560_000_000, reference_value_2d=85_000_000,
    max_dataset_covered=0.05, encoder_blocks=PLAIN_ENCODER_BLOCKS, decoder_convs=PLAIN_DECODER_CONVS,
    batch_corrected_shrink=True, shares_default_data=False)
_RESENC = PlannerPreset(
    name="resenc", reference_class="ResEncUNetPlanner", plans_name="nnUNetResEncUNetPlans", network="resenc_unet",
    gpu_memory_gb=8, reference_gb=8, reference_value_3d=680_000_000, reference_value_2d=135_000_000,
    max_dataset_covered=0.05, encoder_blocks=RESENC_ENCODER_BLOCKS, decoder_convs=RESENC_DECODER_CONVS,
    batch_corrected_shrink=False, shares_default_data=True)
_RESENC_M = PlannerPreset(
    name="resenc-m", reference_class="nnUNetPlannerResEncM", plans_name="nnUNetResEncUNetMPlans",
    network="resenc_unet", gpu_memory_gb=8, reference_gb=8, reference_value_3d=680_000_000,
    reference_value_2d=135_000_000, max_dataset_covered=1.0, encoder_blocks=RESENC_ENCODER_BLOCKS,
    decoder_convs=RESENC_DECODER_CONVS, batch_corrected_shrink=False, shares_default_data=True)
_RESENC_L = PlannerPreset(
    name="resenc-l", reference_class="nnUNetPlannerResEncL", plans_name="nnUNetResEncUNetLPlans",
    network="resenc_unet", gpu_memory_gb=24, reference_gb=24, reference_value_3d=2_100_000_000,
    reference_value_2d=380_000_000, max_dataset_covered=1.0, encoder_blocks=RESENC_ENCODER_BLOCKS,
    decoder_convs=RESENC_DECODER_CONVS, batch_corrected_shrink=False, shares_default_data=True)
_RESENC_XL = PlannerPreset(
    name="resenc-xl", reference_class="nnUNetPlannerResEncXL", plans_name="nnUNetResEncUNetXLPlans",
    network="resenc_unet", gpu_memory_gb=40, reference_gb=40, reference_value_3d=3_600_000_000,
    reference_value_2d=560_000_000, max_dataset_covered=1.0, encoder_blocks=RESENC_ENCODER_BLOCKS,
    decoder_convs=RESENC_DECODER_CONVS, batch_corrected_shrink=False, shares_default_data=True)

for _preset in (_DEFAULT, _RESENC, _RESENC_M, _RESENC_L, _RESENC_XL):
    PRESETS.add(_preset.name, _preset, aliases=(_preset.reference_class,))


def get_preset(name: str) -> PlannerPreset:
    """The preset called ``name`` (or its reference planner class name); unknown names raise ``ConfigError``."""
    return PRESETS.get(name)


def preset_for_reference_class(class_name: str) -> PlannerPreset | None:
    """The preset whose reference planner class is ``class_name``, or ``None``."""
    return PRESETS.get(class_name) if class_name in PRESETS else None
