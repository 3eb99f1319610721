"""Intensity normalization schemes (a registry; the plans name one per input channel).

Each scheme is a function ``fn(image, mask, *, use_mask_for_norm, intensity_properties) -> image`` working on one
channel in float32 (it may modify ``image`` in place). ``mask`` is the cropped segmentation channel whose negative
values mark voxels outside the non-zero region. The formulas are the reference's (facts §4.2):

* ``zscore``: ``(x - mean) / max(std, 1e-8)`` with per-image statistics; with ``use_mask_for_norm`` only voxels
  with ``mask >= 0`` are used and changed (the others stay 0).
* ``ct``: clip to the dataset's foreground 0.5 / 99.5 percentiles, then ``(x - mean) / max(std, 1e-8)`` with the
  dataset's foreground mean / std (from the fingerprint, stored in the plans).
* ``none``: unchanged (cast to float32).
* ``rescale_to_0_1``: ``(x - min) / max(max - min, 1e-8)`` per image.
* ``rgb_to_0_1``: ``x / 255`` for values in ``[0, 255]``.

Reference class names (``ZScoreNormalization``, ``CTNormalization``, ...) are accepted as aliases.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from autounet.errors import PlansError
from autounet.registry import Registry

EPS = 1e-8
CT_KEYS = ("mean", "std", "percentile_00_5", "percentile_99_5")

Normalizer = Callable[..., np.ndarray]
NORMALIZERS: Registry[Normalizer] = Registry("normalization scheme")


class NormalizationError(ValueError):
    """An image that a scheme cannot normalize (the pipeline adds the case and channel to the message)."""


@NORMALIZERS.register("zscore", aliases=("ZScoreNormalization",))
def zscore(image: np.ndarray, mask: np.ndarray | None = None, *, use_mask_for_norm: bool = False,
           intensity_properties: Mapping[str, float] | None = None) -> np.ndarray:
    """Per-image z-score, optionally restricted to the non-zero region (``mask >= 0``)."""
    image = image.astype(np.float32, copy=False)
    if use_mask_for_norm:
        if mask is None:
            msg = "zscore with use_mask_for_norm needs the non-zero mask (the cropped segmentation)"
            raise NormalizationError(msg)
        inside = mask >= 0
        values = image[inside]
        if values.size == 0:
            return image
        mean, std = values.mean(), values.std()
        image[inside] = (values - mean) / max(std, EPS)
        return image
    mean, std = image.mean(), image.std()
    image -= mean
    image /= max(std, EPS)
    return image


def _ct_properties(props: Mapping[str, float] | None) -> tuple[float, float, float, float]:
    if props is None:
        msg = "CT normalization needs the dataset's foreground intensity properties; the plans have none"
        raise PlansError(msg)
    missing = [k for k in CT_KEYS if k not in props]
    if missing:
        msg = f"CT normalization: intensity properties lack {', '.join(missing)} (have {', '.join(props)})"
        raise PlansError(msg)
    return tuple(float(props[k]) for k in CT_KEYS)  # type: ignore[return-value]


@NORMALIZERS.register("ct", aliases=("CTNormalization",))
def ct(image: np.ndarray, mask: np.ndarray | None = None, *, use_mask_for_norm: bool = False,
       intensity_properties: Mapping[str, float] | None = None) -> np.ndarray:
    """Clip to the dataset foreground percentiles, then standardize with the dataset foreground mean / std."""
    mean, std, lower, upper = _ct_properties(intensity_properties)
    image = image.astype(np.float32, copy=False)
    np.clip(image, lower, upper, out=image)
    image -= mean
    image /= max(std, EPS)
    return image


@NORMALIZERS.register("none", aliases=("NoNormalization", "noNorm"))
def none(image: np.ndarray, mask: np.ndarray | None = None, *, use_mask_for_norm: bool = False,
         intensity_properties: Mapping[str, float] | None = None) -> np.ndarray:
    """No normalization (only the cast to float32)."""
    return image.astype(np.float32, copy=False)


@NORMALIZERS.register("rescale_to_0_1", aliases=("RescaleTo01Normalization",))
def rescale_to_0_1(image: np.ndarray, mask: np.ndarray | None = None, *, use_mask_for_norm: bool = False,
                   intensity_properties: Mapping[str, float] | None = None) -> np.ndarray:
    """Per-image min-max rescaling to ``[0, 1]``."""
    image = image.astype(np.float32, copy=False)
    image -= image.min()
    image /= np.clip(image.max(), a_min=EPS, a_max=None)
    return image


@NORMALIZERS.register("rgb_to_0_1", aliases=("RGBTo01Normalization",))
def rgb_to_0_1(image: np.ndarray, mask: np.ndarray | None = None, *, use_mask_for_norm: bool = False,
               intensity_properties: Mapping[str, float] | None = None) -> np.ndarray:
    """Divide 8-bit RGB values by 255."""
    lo, hi = float(image.min()), float(image.max())
    if lo < 0 or hi > 255:
        msg = f"rgb_to_0_1 expects values in [0, 255] (8-bit RGB), found [{lo:g}, {hi:g}]"
        raise NormalizationError(msg)
    image = image.astype(np.float32, copy=False)
    image /= 255.0
    return image


def normalize_channel(image: np.ndarray, mask: np.ndarray | None, name: str, params: Mapping[str, Any], *,
                      intensity_properties: Mapping[str, float] | None) -> np.ndarray:
    """Apply the scheme ``name`` with plans ``params`` (``{"use_mask_for_norm": bool}``) to one channel."""
    unknown = set(params) - {"use_mask_for_norm"}
    if unknown:
        msg = f"normalization {name!r}: unknown parameter(s) {', '.join(sorted(unknown))}; allowed: use_mask_for_norm"
        raise PlansError(msg)
    fn = NORMALIZERS.get(name)
    return fn(image, mask, use_mask_for_norm=bool(params.get("use_mask_for_norm", False)),
              intensity_properties=intensity_properties)
