"""Experiment planning: fingerprint + dataset spec -> Plans, with the reference planner's rules.

Public API:
    plan(fingerprint, spec, *, preset=..., gpu_memory_gb=..., plans_name=..., target_spacing=...,
         configurations=...) -> Plans
    plan_detailed(...) -> PlanningResult (plans + explanation)
    format_explanation(explanation) -> str
    import_plans(reference_dict, ...) -> Plans / export_plans(plans) -> dict   (reference plans JSON)
    PRESETS, get_preset(name)
"""

from __future__ import annotations

from autounet.planning.explain import PlanningExplanation, format_explanation
from autounet.planning.planner import CONFIGURATIONS, DatasetFacts, PlanningResult, plan, plan_detailed
from autounet.planning.presets import PRESETS, PlannerPreset, get_preset

__all__ = ["CONFIGURATIONS", "PRESETS", "DatasetFacts", "PlannerPreset", "PlanningExplanation", "PlanningResult",
           "format_explanation", "get_preset", "plan", "plan_detailed"]
