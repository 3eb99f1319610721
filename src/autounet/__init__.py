"""autounet: self-configuring biomedical image segmentation (the nnU-Net method), rebuilt.

The top-level API mirrors the CLI; see the README for examples.
"""

from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["__version__"]
