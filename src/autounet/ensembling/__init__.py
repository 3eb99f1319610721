"""Ensembling and model selection: :func:`ensemble` (average saved probabilities), :func:`find_best`.

Also the one reader/writer of saved probabilities (``<case>.npz`` + ``<case>.meta.json``):
:func:`write_probabilities`, :func:`read_probabilities`.
"""

from autounet.ensembling.crossval import accumulate_crossval, fold_of_cases
from autounet.ensembling.ensemble import average_probabilities, ensemble, ensemble_crossvalidation
from autounet.ensembling.find_best import (
    DEFAULT_CONFIGURATIONS,
    find_best,
    inference_commands,
    instructions_text,
)
from autounet.ensembling.probabilities import (
    probability_cases,
    read_probabilities,
    read_probability_record,
    write_probabilities,
)
from autounet.schemas.results import EnsembleSpec, InferenceInformation, load_inference_information

__all__ = [
    "DEFAULT_CONFIGURATIONS",
    "EnsembleSpec",
    "InferenceInformation",
    "accumulate_crossval",
    "average_probabilities",
    "ensemble",
    "ensemble_crossvalidation",
    "find_best",
    "fold_of_cases",
    "inference_commands",
    "instructions_text",
    "load_inference_information",
    "probability_cases",
    "read_probabilities",
    "read_probability_record",
    "write_probabilities",
]
