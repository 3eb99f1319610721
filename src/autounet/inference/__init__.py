"""Inference: sliding-window prediction with mirroring TTA and fold ensembles, export to the original geometry.

Entry point: :class:`Predictor` (``Predictor.from_model_dir(...)`` then ``predict`` / ``predict_file`` /
``predict_folder``). Lower-level pieces: :func:`predict_sliding_window` (logits of a preprocessed case),
:func:`export_logits` (back to the original geometry), :func:`save_probabilities` (``--save-probabilities``
files, read by :mod:`autounet.ensembling`). Names are imported lazily, so importing a submodule stays cheap.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "CaseFailure": "runner", "RunReport": "runner",
    "CaseGeometry": "export", "ExportResult": "export", "ProbabilityResampling": "export", "export_logits": "export",
    "CaseInput": "inputs", "discover_cases": "inputs", "shard": "inputs",
    "BACKENDS": "backends", "export_onnx": "onnx", "load_onnx_model": "onnx_runtime",
    "LoadedModel": "model", "load_model": "model", "resolve_device": "model",
    "Prediction": "predictor", "Predictor": "predictor",
    "save_probabilities": "probabilities",
    "SlidingWindowOptions": "sliding", "mirror_combinations": "sliding", "predict_sliding_window": "sliding",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    msg = f"module {__name__!r} has no attribute {name!r}"
    raise AttributeError(msg)
