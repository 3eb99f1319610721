"""Why each planned value was chosen: explanation records returned by the planner, and a text rendering.

The planner returns these records as data (:class:`PlanningExplanation`); only the CLI prints
:func:`format_explanation`'s text.
"""

from __future__ import annotations

from dataclasses import dataclass

from autounet.planning.batch_size import BatchSizeDecision
from autounet.planning.patch_size import ShrinkStep
from autounet.planning.spacing import ANISO_THRESHOLD, SpacingDecision


@dataclass(frozen=True)
class ConfigurationExplanation:
    """How one configuration was planned.

    Attributes:
        name: configuration name.
        spacing: target spacing (transposed).
        median_shape: median image shape at that spacing.
        initial_patch_size: the 256³/2048²-volume box clipped to the median shape (before padding).
        budget: VRAM proxy budget (reference value scaled to the GPU memory target).
        ref_batch_size: batch size the budget refers to (2 in 3D, 12 in 2D).
        batch_corrected: whether the shrink condition is ``estimate / ref_bs * 2 > budget``.
        steps: every evaluated patch with its estimate; the last one is final.
        n_stages: resolution stages of the final network.
        strides: per-stage strides of the final network.
        kernel_sizes: per-stage kernels of the final network.
        dataset_voxels: approximate voxels in the dataset at this spacing (for the coverage cap).
        batch: the batch-size decision.
        normalization: normalization scheme per channel.
        use_mask_for_norm: per channel.
        median_relative_size_after_cropping: drives ``use_mask_for_norm``.
    """

    name: str
    spacing: tuple[float, ...]
    median_shape: tuple[float, ...]
    initial_patch_size: tuple[float, ...]
    budget: float
    ref_batch_size: int
    batch_corrected: bool
    steps: tuple[ShrinkStep, ...]
    n_stages: int
    strides: tuple[tuple[int, ...], ...]
    kernel_sizes: tuple[tuple[int, ...], ...]
    dataset_voxels: float
    batch: BatchSizeDecision
    normalization: tuple[str, ...]
    use_mask_for_norm: tuple[bool, ...]
    median_relative_size_after_cropping: float


@dataclass(frozen=True)
class LowresStep:
    """One iteration of the 3d_lowres search: spacing tried, median shape there, resulting patch."""

    spacing: tuple[float, ...]
    median_shape: tuple[int, ...]
    patch_size: tuple[int, ...]
    patch_fraction: float


@dataclass(frozen=True)
class PlanningExplanation:
    """Dataset-level decisions plus one :class:`ConfigurationExplanation` per planned configuration."""

    preset: str
    plans_name: str
    gpu_memory_gb: float
    spacing: SpacingDecision
    transpose_forward: tuple[int, ...]
    median_shape_transposed: tuple[float, ...]
    num_training: int
    configurations: tuple[ConfigurationExplanation, ...]
    lowres_steps: tuple[LowresStep, ...]
    lowres_outcome: str
    notes: tuple[str, ...] = ()


def _fmt(values: tuple[float, ...] | tuple[int, ...] | list[float]) -> str:
    return "(" + ", ".join(f"{v:.6g}" if isinstance(v, float) else str(v) for v in values) + ")"


def _spacing_lines(d: SpacingDecision) -> list[str]:
    lines = [f"median spacing {_fmt(d.median_spacing)}, median cropped shape {_fmt(d.median_shape)}"]
    if d.overridden:
        lines.append(f"target spacing {_fmt(d.target)} given by the user (--target-spacing); no rule applied")
        return lines
    lines.append(
        f"anisotropy check on axis {d.worst_axis}: spacing > {ANISO_THRESHOLD:g}x others: {d.anisotropic_spacing};"
        f" voxels x {ANISO_THRESHOLD:g} < others: {d.anisotropic_voxels}")
    if d.corrected_value is not None:
        lines.append(f"-> axis {d.worst_axis} uses the 10th percentile of its spacings: {d.corrected_value:.6g}")
    lines.append(f"target spacing (3d_fullres) {_fmt(d.target)}")
    return lines


def _configuration_lines(c: ConfigurationExplanation) -> list[str]:
    shrink_rule = (f"estimate / {c.ref_batch_size} x 2 > budget" if c.batch_corrected else "estimate > budget")
    lines = [f"[{c.name}] spacing {_fmt(c.spacing)}, median shape {_fmt(c.median_shape)}",
             f"  initial patch {_fmt(c.initial_patch_size)} (aspect of 1/spacing, clipped to the median shape)",
             f"  VRAM budget {c.budget:,.0f} (shrink while {shrink_rule})"]
    for step in c.steps:
        how = "initial (padded)" if step.reduced_axis is None else f"reduced axis {step.reduced_axis}"
        lines.append(f"    patch {_fmt(step.patch_size)}: estimate {step.estimate:,} ({how})")
    lines.append(f"  final patch {_fmt(c.steps[-1].patch_size)}, {c.n_stages} stages, strides "
                 f"{[list(s) for s in c.strides[1:]]}, kernels {[list(k) for k in c.kernel_sizes]}")
    b = c.batch
    lines.append(f"  batch size {b.batch_size}: from memory {b.from_memory}, coverage cap {b.coverage_cap}"
                 f" ({c.dataset_voxels:,.0f} dataset voxels); limited by {b.limited_by}")
    masks = ", ".join(f"{n}{' (masked)' if m else ''}" for n, m in zip(c.normalization, c.use_mask_for_norm,
                                                                       strict=True))
    lines.append(f"  normalization {masks}; median relative size after cropping "
                 f"{c.median_relative_size_after_cropping:.4g} (mask used for z-score iff < 0.75)")
    return lines


def format_explanation(explanation: PlanningExplanation) -> str:
    """Human-readable multi-line text of the planning decisions."""
    e = explanation
    lines = [f"Planner preset {e.preset!r}, plans {e.plans_name!r}, GPU memory target {e.gpu_memory_gb:g} GB"]
    lines += _spacing_lines(e.spacing)
    lines.append(f"transpose_forward {list(e.transpose_forward)}; median shape after resampling (transposed) "
                 f"{_fmt(e.median_shape_transposed)}; {e.num_training} training cases")
    for c in e.configurations:
        lines += _configuration_lines(c)
    if e.lowres_steps:
        lines.append("3d_lowres search (until the patch covers >= 25% of the median image):")
        for s in e.lowres_steps:
            lines.append(f"    spacing {_fmt(s.spacing)}, median {_fmt(s.median_shape)}, patch {_fmt(s.patch_size)}"
                         f" covers {s.patch_fraction:.1%}")
    lines.append(f"3d_lowres: {e.lowres_outcome}")
    lines += list(e.notes)
    return "\n".join(lines)
