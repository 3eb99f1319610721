"""U-Nets built from a planned :class:`~autounet.schemas.plans.NetworkSpec` (registry: ``plain_unet``,
``resenc_unet``), with the reference's layers, initialisation and parameter counts.

Typical use::

    from autounet import networks
    net = networks.build(plans.configuration("3d_fullres").network, in_channels=1, num_outputs=3)
    outputs = net(batch)                      # list of logits, highest resolution first
    networks.set_deep_supervision(net, False)  # inference: only full-resolution logits
"""

from __future__ import annotations

from autounet.networks.reference_compat import convert_reference_state_dict, to_reference_state_dict
from autounet.networks.registry import (
    NETWORKS,
    build,
    count_parameters,
    output_strides,
    set_deep_supervision,
    unwrap,
)
from autounet.networks.unet import UNet

__all__ = [
    "NETWORKS",
    "UNet",
    "build",
    "convert_reference_state_dict",
    "to_reference_state_dict",
    "count_parameters",
    "output_strides",
    "set_deep_supervision",
    "unwrap",
]
