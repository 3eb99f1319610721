"""Writing saved probabilities (``--save-probabilities``) from the inference stage.

The format is the one :mod:`autounet.ensembling.probabilities` reads: ``<case>.npz`` with the single key
``probabilities`` (float32, ``(K, *original_array_shape)``) and ``<case>.meta.json``, a
:class:`autounet.schemas.results.ProbabilityRecord` (geometry, label semantics, segmentation file ending).
Inference comes before ensembling in the import order, so it writes the record itself through the shared schema.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from autounet._atomic import atomic_path
from autounet.errors import SchemaError
from autounet.io import ImageGeometry
from autounet.labels import LabelSpec
from autounet.schemas._base import make_provenance, save_record
from autounet.schemas.results import ProbabilityRecord
from autounet.workspace import PROBABILITIES_ENDING, PROBABILITIES_META_ENDING

NPZ_KEY = "probabilities"


def probability_paths(output_dir: str | os.PathLike[str], case_id: str) -> tuple[Path, Path]:
    """``(<case>.npz, <case>.meta.json)`` in ``output_dir``."""
    folder = Path(output_dir)
    return folder / f"{case_id}{PROBABILITIES_ENDING}", folder / f"{case_id}{PROBABILITIES_META_ENDING}"


def save_probabilities(output_dir: str | os.PathLike[str], case_id: str, probabilities: np.ndarray, *,
                       geometry: ImageGeometry, labels: LabelSpec, file_ending: str) -> Path:
    """Write ``<case>.npz`` (compressed float32) and ``<case>.meta.json`` atomically; returns the ``.npz`` path."""
    probs = np.asarray(probabilities, dtype=np.float32)
    if probs.ndim != 4 or probs.shape[0] != labels.num_outputs:
        msg = (f"Case {case_id}: probabilities must be (K={labels.num_outputs}, a0, a1, a2), "
               f"got shape {probs.shape}.")
        raise SchemaError(msg)
    npz, meta = probability_paths(output_dir, case_id)
    with atomic_path(npz) as tmp, tmp.open("wb") as fh:
        arrays: dict[str, Any] = {NPZ_KEY: probs}
        np.savez_compressed(fh, **arrays)
    record = ProbabilityRecord(case=case_id, shape=tuple(probs.shape), geometry=geometry.to_dict(),
                               labels=labels.to_dict(), file_ending=file_ending)
    save_record(meta, record.to_dict(provenance=make_provenance("autounet predict")))
    return npz
