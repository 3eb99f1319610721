"""Connected-component post-processing: :func:`determine` on cross-validation predictions, :func:`apply` to a folder."""

from autounet.postprocessing.connected_components import apply_steps, keep_largest_component, largest_components
from autounet.postprocessing.decide import apply, determine
from autounet.schemas.results import PostprocessingDecision, PostprocessingStep, load_postprocessing

__all__ = [
    "PostprocessingDecision",
    "PostprocessingStep",
    "apply",
    "apply_steps",
    "determine",
    "keep_largest_component",
    "largest_components",
    "load_postprocessing",
]
