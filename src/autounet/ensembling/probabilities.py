"""Saved per-case probabilities: the one reader of ``<case>.npz`` + ``<case>.meta.json``.

The writer is :func:`autounet.inference.probabilities.save_probabilities` (inference comes first in the import
order), re-exported here as :func:`write_probabilities`. Format (written by ``autounet predict
--save-probabilities``, by the pipeline's validation and by ``autounet ensemble --save-probabilities``):

- ``<case>.npz``: a compressed NumPy archive with the single key ``probabilities`` (as the reference), float32,
  shape ``(K, a0, a1, a2)`` in the original image's array geometry (channel first; 2D images ``(K, 1, H, W)``).
  Label mode: softmax over the ``K`` labels (channel ``i`` is label value ``i``; outside the crop box background
  is 1). Region mode: one sigmoid channel per foreground region (all 0 outside the crop box).
- ``<case>.meta.json``: a :class:`~autounet.schemas.results.ProbabilityRecord` (schema-versioned JSON) with the
  source image geometry, the label semantics and the segmentation file ending, so a folder of probabilities is
  self-describing (the reference needs a pickle plus plans).
"""

from __future__ import annotations

import os
import zipfile
from pathlib import Path

import numpy as np

from autounet.errors import DatasetError
from autounet.inference.probabilities import NPZ_KEY as PROBABILITIES_KEY
from autounet.inference.probabilities import save_probabilities as write_probabilities
from autounet.io import ImageGeometry
from autounet.labels import LabelSpec
from autounet.schemas._base import read_json
from autounet.schemas.results import ProbabilityRecord
from autounet.workspace import PROBABILITIES_ENDING, PROBABILITIES_META_ENDING

__all__ = [
    "PROBABILITIES_KEY",
    "metadata_path",
    "probabilities_path",
    "probability_cases",
    "read_probabilities",
    "read_probability_record",
    "record_geometry",
    "record_labels",
    "write_probabilities",
]


def probabilities_path(folder: str | os.PathLike[str], case: str) -> Path:
    """``<folder>/<case>.npz``."""
    return Path(folder) / f"{case}{PROBABILITIES_ENDING}"


def metadata_path(folder: str | os.PathLike[str], case: str) -> Path:
    """``<folder>/<case>.meta.json``."""
    return Path(folder) / f"{case}{PROBABILITIES_META_ENDING}"


def probability_cases(folder: str | os.PathLike[str]) -> list[str]:
    """Sorted case ids with saved probabilities (an ``.npz`` and its ``.meta.json``) in ``folder``."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    return sorted(f.name[: -len(PROBABILITIES_ENDING)] for f in folder.iterdir()
                  if f.name.endswith(PROBABILITIES_ENDING) and not f.name.startswith(".")
                  and metadata_path(folder, f.name[: -len(PROBABILITIES_ENDING)]).is_file())


def read_probability_record(folder: str | os.PathLike[str], case: str) -> ProbabilityRecord:
    """The metadata of one case's saved probabilities."""
    path = metadata_path(folder, case)
    return ProbabilityRecord.from_dict(read_json(path, what="Probabilities metadata"),
                                       where=f"probabilities metadata {path}")


def read_probabilities(folder: str | os.PathLike[str], case: str) -> tuple[np.ndarray, ProbabilityRecord]:
    """Load one case's probabilities (float32) and metadata; checks the stored shape against the record."""
    record = read_probability_record(folder, case)
    path = probabilities_path(folder, case)
    if not path.is_file():
        msg = f"Case {case}: probabilities file {path} is missing (its metadata exists)."
        raise DatasetError(msg)
    try:
        with np.load(path) as archive:
            probs = np.asarray(archive[PROBABILITIES_KEY], dtype=np.float32)
    except (KeyError, OSError, ValueError, zipfile.BadZipFile) as exc:
        msg = f"Case {case}: cannot read probabilities from {path}: {exc}"
        raise DatasetError(msg) from exc
    if tuple(probs.shape) != record.shape:
        msg = f"Case {case}: {path} holds shape {probs.shape} but its metadata says {record.shape}."
        raise DatasetError(msg)
    return probs, record


def record_labels(record: ProbabilityRecord) -> LabelSpec:
    """The label semantics stored in a record."""
    data = record.labels
    return LabelSpec.from_labels(data["labels"], regions_class_order=data.get("regions_class_order"))


def record_geometry(record: ProbabilityRecord) -> ImageGeometry:
    """The source image geometry stored in a record."""
    return ImageGeometry.from_dict(record.geometry)
