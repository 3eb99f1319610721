"""The planner's VRAM proxy: the number of feature-map elements written by every convolution of the U-Net.

Facts §3.6 step 5. The proxy is the sum, over every conv unit (encoder convs, residual convs and projection skips,
decoder convs, transposed convs, and the final segmentation output), of ``channels x prod(spatial size)``, with
sizes obtained by floor division by the strides. Deep supervision is off (only the full-resolution output counts)
unless requested. The number of outputs is what the caller passes: the reference passes ``len(labels)``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence


def stage_sizes(patch_size: Sequence[int], strides: Sequence[Sequence[int]]) -> list[tuple[int, ...]]:
    """Spatial size of each stage's output: cumulative floor division of the patch by the strides."""
    sizes = []
    size = tuple(int(p) for p in patch_size)
    for stride in strides:
        size = tuple(a // b for a, b in zip(size, stride, strict=True))
        sizes.append(size)
    return sizes


def feature_map_size(network: str, *, patch_size: Sequence[int], strides: Sequence[Sequence[int]],
                     features_per_stage: Sequence[int], blocks_per_stage: Sequence[int],
                     convs_per_stage_decoder: Sequence[int], num_outputs: int,
                     deep_supervision: bool = False) -> int:
    """VRAM proxy of a ``plain_unet`` or ``resenc_unet`` for one sample of ``patch_size``.

    Args:
        network: ``plain_unet`` (PlainConvUNet) or ``resenc_unet`` (ResidualEncoderUNet).
        patch_size: input patch (spatial only).
        strides: per-stage strides, ``strides[0]`` all ones.
        features_per_stage: output channels per stage.
        blocks_per_stage: convs (plain) or residual blocks (ResEnc) per encoder stage.
        convs_per_stage_decoder: convs per decoder stage (``n_stages - 1`` entries, decoder order).
        num_outputs: channels of the segmentation output(s).
        deep_supervision: also count the lower-resolution outputs.
    """
    sizes = stage_sizes(patch_size, strides)
    if network == "plain_unet":
        encoder = _plain_encoder(sizes, features_per_stage, blocks_per_stage)
    elif network == "resenc_unet":
        encoder = _resenc_encoder(patch_size, sizes, features_per_stage, blocks_per_stage)
    else:
        msg = f"no VRAM estimate for network {network!r}; known: plain_unet, resenc_unet"
        raise ValueError(msg)
    return encoder + _decoder(sizes, features_per_stage, convs_per_stage_decoder, num_outputs, deep_supervision)


def _plain_encoder(sizes: list[tuple[int, ...]], features: Sequence[int], convs: Sequence[int]) -> int:
    return sum(n * c * math.prod(size) for size, c, n in zip(sizes, features, convs, strict=True))


def _resenc_encoder(patch_size: Sequence[int], sizes: list[tuple[int, ...]], features: Sequence[int],
                    blocks: Sequence[int]) -> int:
    total = features[0] * math.prod(int(p) for p in patch_size)  # stem: one conv, no stride
    in_channels, in_size = features[0], tuple(int(p) for p in patch_size)
    for size, c, n in zip(sizes, features, blocks, strict=True):
        voxels = math.prod(size)
        total += 2 * c * voxels * n  # conv1 + conv2 of every block
        if in_channels != c or in_size != size:
            total += c * voxels  # projection skip of the first block
        in_channels, in_size = c, size
    return total


def _decoder(sizes: list[tuple[int, ...]], features: Sequence[int], convs: Sequence[int], num_outputs: int,
             deep_supervision: bool) -> int:
    skips = sizes[:-1]
    n_dec = len(skips)
    total = 0
    for s in range(n_dec):
        level = n_dec - 1 - s
        voxels = math.prod(skips[level])
        channels = features[level]
        total += convs[s] * channels * voxels + channels * voxels  # decoder convs + transposed conv output
        if deep_supervision or s == n_dec - 1:
            total += num_outputs * voxels
    return total
