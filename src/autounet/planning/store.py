"""Plans on disk: read ours or the reference's, write with re-planning semantics, and plan a workspace dataset."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from autounet._atomic import write_bytes_atomic
from autounet._log import get_logger
from autounet.planning.planner import PlanningResult, plan_detailed
from autounet.planning.reference import import_plans
from autounet.schemas._base import read_json
from autounet.schemas.plans import Plans, save_plans
from autounet.workspace import Workspace

log = get_logger(__name__)


def read_plans_file(path: str | os.PathLike[str]) -> Plans:
    """Load a plans file written by autounet or by the reference (converted on load)."""
    data = read_json(path, what="Plans file")
    where = f"plans file {os.fspath(path)}"
    if isinstance(data, dict) and "schema" not in data:
        return import_plans(data, where=where)
    return Plans.from_dict(data, where=where)


def merge_with_existing(plans: Plans, path: str | os.PathLike[str]) -> Plans:
    """Re-planning as the reference does: configurations of an existing file that were not regenerated now are
    kept (after the new ones); regenerated ones and top-level values are replaced."""
    path = Path(path)
    if not path.is_file():
        return plans
    old = read_plans_file(path)
    kept = {k: v for k, v in old.configurations.items() if k not in plans.configurations}
    if kept:
        log.info("Keeping configuration(s) %s from the existing %s", ", ".join(kept), path.name)
    merged = dataclasses.replace(plans, configurations={**plans.configurations, **kept})
    for name in merged.configurations:  # a kept configuration may inherit from a regenerated one
        merged.resolved_dict(name)
    return merged


def write_plans(path: str | os.PathLike[str], plans: Plans, *, keep_existing: bool = True) -> Plans:
    """Write ``plans`` atomically (merging with an existing file unless ``keep_existing`` is False)."""
    merged = merge_with_existing(plans, path) if keep_existing else plans
    save_plans(path, merged)
    return merged


def plan_dataset(workspace: Workspace, dataset: str | int | os.PathLike[str], *, preset: str = "default",
                 gpu_memory_gb: float | None = None, plans_name: str | None = None,
                 target_spacing: Sequence[float] | None = None, configurations: Iterable[str] | None = None,
                 clean: bool = False, workers: int = 1, progress: bool = False) -> tuple[PlanningResult, Path]:
    """Fingerprint (reused unless ``clean``), plan, and write ``preprocessed/<Dataset>/<PlansName>.json`` plus a
    copy of ``dataset.json``. Returns the planning result (with the plans as written) and the plans file."""
    from autounet.dataset import open_raw_dataset  # noqa: PLC0415
    from autounet.fingerprint import ensure_fingerprint  # noqa: PLC0415

    raw = open_raw_dataset(dataset, workspace)
    raw.require_files()
    if not workspace.splits_file(raw.name).is_file():  # a hand-written split is the way forward already taken
        _warn_if_small(raw)
    fingerprint = ensure_fingerprint(raw, workspace.fingerprint_file(raw.name), clean=clean, workers=workers,
                                     progress=progress)
    result = plan_detailed(fingerprint, raw.spec, preset=preset, gpu_memory_gb=gpu_memory_gb,
                           plans_name=plans_name, target_spacing=target_spacing, configurations=configurations,
                           dataset_name=raw.name, image_reader=fingerprint.image_reader or raw.reader_name())
    path = workspace.plans_file(raw.name, result.plans.plans_name)
    written = write_plans(path, result.plans)
    write_bytes_atomic(workspace.preprocessed_dataset_json(raw.name), raw.dataset_json.read_bytes())
    return dataclasses.replace(result, plans=written), path


def _warn_if_small(raw: Any) -> None:
    """A warning when the dataset has fewer labelled cases than cross-validation folds."""
    from autounet.dataset import small

    labelled = sum(1 for files in raw.cases.values() if files.label is not None)
    if small.is_small(labelled):
        log.warning("%s: %s", raw.name, small.advice(labelled, dataset=raw.name))


def export_reference_file(plans: Plans, path: str | os.PathLike[str]) -> dict[str, Any]:
    """Write ``plans`` in the reference's format to ``path`` (atomically); returns the dict written."""
    from autounet._atomic import write_json_atomic  # noqa: PLC0415
    from autounet.planning.reference import export_plans  # noqa: PLC0415

    data = export_plans(plans)
    write_json_atomic(path, data, indent=4)
    return data
