"""autounet: self-configuring biomedical image segmentation (the nnU-Net method), rebuilt.

The top-level functions mirror the CLI one to one (``autounet.run``, ``autounet.plan``, ``autounet.train``,
``autounet.predict``, ...); see :mod:`autounet.api` and the README. Importing ``autounet`` is cheap: the stage
packages (and torch) load on first use.
"""

from __future__ import annotations

from autounet._version import VERSION
from autounet.api import (
    evaluate,
    find_best,
    fingerprint,
    import_dataset,
    on_cluster,
    plan,
    predict,
    preprocess,
    run,
    train,
    verify,
)

__version__ = VERSION
__all__ = ["__version__", "evaluate", "find_best", "fingerprint", "import_dataset", "on_cluster", "plan", "predict",
           "preprocess", "run", "train", "verify"]
