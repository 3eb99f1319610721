"""Normalization scheme per channel from ``channel_names`` and the use-mask-for-norm rule (facts §3.7)."""

from __future__ import annotations

from collections.abc import Sequence

from autounet.schemas.plans import ComponentSpec

#: channel name (case-folded) -> normalization registry name; every other name means z-score.
CHANNEL_NAME_TO_SCHEME = {
    "ct": "ct",
    "nonorm": "none",
    "zscore": "zscore",
    "rescale_to_0_1": "rescale_to_0_1",
    "rgb_to_0_1": "rgb_to_0_1",
}
#: schemes that keep voxels outside the non-zero mask at zero when normalizing inside the mask only.
MASKABLE_SCHEMES = frozenset({"zscore"})
USE_MASK_THRESHOLD = 0.75


def scheme_for_channel(channel_name: str) -> str:
    """Normalization registry name for one channel name (``CT`` -> ``ct``, ``noNorm`` -> ``none``, else ``zscore``)."""
    return CHANNEL_NAME_TO_SCHEME.get(channel_name.casefold(), "zscore")


def use_mask_for_norm(schemes: Sequence[str], median_relative_size_after_cropping: float) -> tuple[bool, ...]:
    """True for z-score channels iff cropping removed a lot (median relative size < 0.75), else all False."""
    if median_relative_size_after_cropping < USE_MASK_THRESHOLD:
        return tuple(s in MASKABLE_SCHEMES for s in schemes)
    return (False,) * len(schemes)


def normalization_components(channel_names: Sequence[str],
                             median_relative_size_after_cropping: float) -> tuple[ComponentSpec, ...]:
    """One ``ComponentSpec`` per channel with params ``{"use_mask_for_norm": bool}``."""
    schemes = [scheme_for_channel(name) for name in channel_names]
    masks = use_mask_for_norm(schemes, median_relative_size_after_cropping)
    return tuple(ComponentSpec(s, {"use_mask_for_norm": m}) for s, m in zip(schemes, masks, strict=True))


def resampling_components() -> dict[str, ComponentSpec]:
    """The default planner's resampling settings (facts §3.8): data order 3, seg order 1, probabilities order 1,
    all with order_z 0 and automatic separate-z."""
    def spec(is_seg: bool, order: int) -> ComponentSpec:
        return ComponentSpec("default", {"is_seg": is_seg, "order": order, "order_z": 0, "force_separate_z": None})

    return {"resampling_data": spec(False, 3), "resampling_seg": spec(True, 1),
            "resampling_probabilities": spec(False, 1)}
