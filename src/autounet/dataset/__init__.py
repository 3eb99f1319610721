"""Raw datasets: discovery (:func:`open_raw_dataset`), verification (:func:`verify`), import from plain folders
(:func:`import_folders`) and Medical Segmentation Decathlon conversion (:func:`convert_msd`)."""

from __future__ import annotations

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

__all__ = [
    "IMAGES_TR",
    "IMAGES_TS",
    "LABELS_TR",
    "CaseFiles",
    "RawDataset",
    "group_channel_files",
    "locate_dataset",
    "open_raw_dataset",
]
