"""Raw datasets: discovery (:func:`open_raw_dataset`), verification (:func:`verify`), import from plain folders
(:func:`import_folders`) and Medical Segmentation Decathlon conversion (:func:`convert_msd`)."""

from __future__ import annotations

from autounet.dataset.importer import ImportResult, Unpaired, import_folders, pair_cases
from autounet.dataset.msd import convert_msd
from autounet.dataset.raw import (
    IMAGES_TR,
    IMAGES_TS,
    LABELS_TR,
    CaseFiles,
    RawDataset,
    group_channel_files,
    locate_dataset,
    open_raw_dataset,
)
from autounet.dataset.verification import Problem, Tolerances, VerificationReport, verify

__all__ = [
    "IMAGES_TR",
    "IMAGES_TS",
    "LABELS_TR",
    "CaseFiles",
    "ImportResult",
    "Problem",
    "RawDataset",
    "Tolerances",
    "Unpaired",
    "VerificationReport",
    "convert_msd",
    "group_channel_files",
    "import_folders",
    "locate_dataset",
    "open_raw_dataset",
    "pair_cases",
    "verify",
]
