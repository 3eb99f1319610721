"""Preprocessing: crop, normalize, resample, class locations and the chunked case store.

Public interface:

* :func:`preprocess_case` -- one case (training and inference share it) -> :class:`PreprocessedCase`;
* :func:`run` -- all labelled cases of a dataset, in parallel, resumable, into a :class:`CaseStore` folder;
* :class:`CaseStore` -- ``case_ids()``, ``properties(case)``, ``open(case)`` (lazy arrays), ``read_patch``;
* :func:`resample_data_or_seg_to_shape`, :func:`resample`, :func:`compute_new_shape` -- the resampling functions
  (inference reuses them to bring predictions back to the original geometry);
* registries :data:`NORMALIZERS`, :data:`RESAMPLERS`, :data:`PREPROCESSORS`.
"""

from __future__ import annotations

from autounet.preprocessing.class_locations import classes_to_sample, sample_class_locations
from autounet.preprocessing.crop import bbox_to_slices, crop_to_nonzero
from autounet.preprocessing.normalize import NORMALIZERS, normalize_channel
from autounet.preprocessing.pipeline import (
    PREPROCESSORS,
    PreprocessedCase,
    preprocess_case,
    preprocessing_hash,
)
from autounet.preprocessing.properties import CaseProperties
from autounet.preprocessing.resample import (
    RESAMPLERS,
    compute_new_shape,
    resample,
    resample_data_or_seg_to_shape,
    separate_z_axis,
)
from autounet.preprocessing.run import ConfigurationSummary, run
from autounet.preprocessing.store import CaseArrays, CaseStore, chunk_and_block_shapes, write_case

__all__ = [
    "NORMALIZERS",
    "PREPROCESSORS",
    "RESAMPLERS",
    "CaseArrays",
    "CaseProperties",
    "CaseStore",
    "ConfigurationSummary",
    "PreprocessedCase",
    "bbox_to_slices",
    "chunk_and_block_shapes",
    "classes_to_sample",
    "compute_new_shape",
    "crop_to_nonzero",
    "normalize_channel",
    "preprocess_case",
    "preprocessing_hash",
    "resample",
    "resample_data_or_seg_to_shape",
    "run",
    "sample_class_locations",
    "separate_z_axis",
    "write_case",
]
