"""Batched data augmentation on the training device (the reference's pipeline, facts §5.4-5.5).

Public interface: :class:`AugmentationConfig` (presets ``default``, ``light``, ``none`` or a JSON file via
:func:`load`), :func:`build` returning an :class:`Augmenter` callable on ``(B, C, *spatial)`` tensors on any
device, and :func:`initial_patch_size` for the patch sampler.
"""

from autounet.augmentation.config import PRESETS, AugmentationConfig, load, preset
from autounet.augmentation.pipeline import (
                                            AugmentationParams,
                                            AugmentedBatch,
                                            Augmenter,
                                            build,
                                            initial_patch_size,
                                            mirror_axes,
                                            rotation_range_deg,
                                            use_dummy_2d,
)
from autounet.augmentation.targets import deep_supervision_scales

__all__ = [
    "PRESETS",
    "AugmentationConfig",
    "AugmentationParams",
    "AugmentedBatch",
    "Augmenter",
    "build",
    "deep_supervision_scales",
    "initial_patch_size",
    "load",
    "mirror_axes",
    "preset",
    "rotation_range_deg",
    "use_dummy_2d",
]
