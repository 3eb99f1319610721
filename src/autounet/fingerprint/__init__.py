"""Dataset fingerprint: ``extract(raw_dataset, *, workers, progress) -> Fingerprint``.

Per case: crop to the non-zero region, record spacing and shapes, and sample foreground intensities exactly as the
reference does (same generator, same draws); across cases: aggregate with memory bounded independently of the
number of cases. ``ensure_fingerprint`` reuses an up-to-date ``dataset_fingerprint.json``.
"""

from __future__ import annotations

from autounet.fingerprint.extract import (
    CaseSummary,
    aggregate,
    analyze_case,
    dataset_signature,
    ensure_fingerprint,
    extract,
)
from autounet.schemas.fingerprint import Fingerprint, IntensityProperties, load_fingerprint, save_fingerprint

__all__ = ["CaseSummary", "Fingerprint", "IntensityProperties", "aggregate", "analyze_case", "dataset_signature",
           "ensure_fingerprint", "extract", "load_fingerprint", "save_fingerprint"]
