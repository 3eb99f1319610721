"""``run``: preprocess every training case of a dataset for some configurations, in parallel, resumably.

For each configuration (configurations sharing a data identifier, like ``3d_cascade_fullres`` and ``3d_fullres``,
are processed once) the cases whose stored record is missing or was made with other plans settings are
preprocessed in ``workers`` spawned processes (one case per process at a time, so memory is bounded by the
number of workers) and written to the case store atomically. The ground-truth label files are copied to
``preprocessed/<ds>/gt_segmentations/`` for evaluation.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from autounet._atomic import atomic_path
from autounet._log import get_logger
from autounet._parallel import map_as_completed
from autounet.errors import DatasetError
from autounet.labels import LabelSpec
from autounet.preprocessing.pipeline import preprocess_case, preprocessing_hash
from autounet.preprocessing.store import (
    PROPERTIES_SUFFIX,
    case_files,
    check_case,
    remove_temporary_files,
    write_case,
)
from autounet.schemas.plans import Plans
from autounet.workspace import Workspace

log = get_logger(__name__)


@dataclass(frozen=True)
class CaseTask:
    """Everything a worker needs to preprocess and store one case (picklable)."""

    case_id: str
    images: tuple[Path, ...]
    label: Path | None
    plans: Plans
    configuration: str
    labels: LabelSpec
    folder: Path
    plans_sha256: str
    expected_labels: tuple[int, ...] | None = None
    dataset: str | None = None


@dataclass(frozen=True)
class CaseResult:
    """What a worker reports back."""

    case_id: str
    configuration: str
    shape: tuple[int, ...]
    seconds: float


@dataclass
class ConfigurationSummary:
    """Outcome of one configuration: its folder, the cases written and the cases already up to date."""

    configuration: str
    folder: Path
    processed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0


def preprocess_and_store(task: CaseTask) -> CaseResult:
    """Read one case, enforce ``verify``'s per-case contract (no NaN/Inf, only declared label values, label
    geometry matching the image), preprocess it and write it to the store (runs in a worker process)."""
    from autounet.dataset._case_checks import check_read_case, raise_for_problems
    from autounet.io import read_images, read_segmentation

    start = time.perf_counter()
    reader = task.plans.image_reader_writer
    images, geometry = read_images(list(task.images), reader=reader)
    seg, seg_geometry = read_segmentation(task.label, reader=reader) if task.label is not None else (None, None)
    raise_for_problems(check_read_case(task.case_id, images, geometry, task.images, seg, seg_geometry, task.label,
                                       expected_labels=task.expected_labels), dataset=task.dataset)
    config = task.plans.configuration(task.configuration)
    case = preprocess_case(images, seg, geometry, task.plans, config, labels=task.labels, case_id=task.case_id,
                           plans_sha256=task.plans_sha256, copy=False)
    del images, seg
    write_case(task.folder, case.data, case.seg, case.properties, patch_size=config.patch_size)
    return CaseResult(task.case_id, task.configuration, tuple(case.data.shape), time.perf_counter() - start)


def stored_hash(folder: Path, case: str, *, full_check: bool = False) -> str | None:
    """The plans hash recorded for a stored case, or ``None`` if the case is absent, incomplete, unreadable or its
    files do not match the sizes and checksums in its record (``store.check_case``; ``full_check`` computes every
    checksum, otherwise only those of files whose modification time changed)."""
    files = case_files(folder, case)
    if not all(files[k].is_file() for k in ("properties", "data", "seg", "locations")):
        return None
    try:
        record = json.loads(files["properties"].read_text(encoding="utf-8"))
        digest, records = str(record.get("plans_sha256")), record.get("files")
    except (OSError, ValueError, AttributeError):
        return None
    try:
        problem = check_case(folder, case, records, full=full_check)
    except (OSError, KeyError, TypeError, AttributeError) as exc:
        problem = f"its record cannot be checked ({type(exc).__name__}: {exc})"
    if problem is not None:
        log.warning("Stored case %s is redone: %s.", case, problem)
        return None
    return digest


def _remove_case(folder: Path, case: str) -> None:
    files = case_files(folder, case)
    files["properties"].unlink(missing_ok=True)  # first: the case stops being visible
    for path in files.values():
        path.unlink(missing_ok=True)


def copy_ground_truth(cases: Iterable[tuple[str, Path]], target_folder: Path, file_ending: str) -> int:
    """Copy label files to ``target_folder/<case><ending>`` when missing or older than the source."""
    copied = 0
    target_folder.mkdir(parents=True, exist_ok=True)
    for case, source in cases:
        target = target_folder / f"{case}{file_ending}"
        if target.is_file() and target.stat().st_mtime >= source.stat().st_mtime:
            continue
        with atomic_path(target) as tmp:
            shutil.copy2(source, tmp)
        copied += 1
    return copied


def _unique_configurations(plans: Plans, configurations: Sequence[str]) -> list[str]:
    """Configurations to process, dropping those that share an already listed data identifier."""
    seen: dict[str, str] = {}
    out = []
    for name in configurations:
        identifier = plans.configuration(name).data_identifier
        if identifier in seen:
            log.info("Configuration %s shares its preprocessed data (%s) with %s; not processed again.", name,
                     identifier, seen[identifier])
            continue
        seen[identifier] = name
        out.append(name)
    return out


def run(workspace: Workspace, dataset_name: str, plans: Plans, configurations: Sequence[str], *,
        workers: int = 4, progress: bool = False, clean: bool = False,
        full_check: bool = False) -> list[ConfigurationSummary]:
    """Preprocess the labelled cases of ``dataset_name`` for ``configurations``.

    Args:
        workspace: the workspace (raw data is read from ``workspace.raw``).
        dataset_name: ``DatasetXXX_Name``.
        plans: the plans (``autounet.planning.store.read_plans_file``).
        configurations: configuration names; ones that share a data identifier are processed once.
        workers: worker processes (1 runs in this process).
        progress: show a progress bar on stderr.
        clean: delete the configuration's stored cases first instead of reusing up-to-date ones.
        full_check: checksum every stored file before reusing its case (by default only files whose size or
            modification time differ from the record are suspected; see ``store.check_case``).

    Returns:
        One summary per processed configuration.
    """
    from autounet.dataset import open_raw_dataset
    from autounet.dataset.verification import expected_label_values

    raw = open_raw_dataset(workspace.raw_dataset(dataset_name), workspace)
    raw.require_files()
    labels = LabelSpec.from_dataset_spec(raw.spec)
    expected = expected_label_values(raw.spec, file=raw.dataset_json)
    labelled = {c: f for c, f in raw.cases.items() if f.label is not None}
    if not labelled:
        msg = f"Dataset {dataset_name} has no labelled training cases in {raw.root}."
        raise DatasetError(msg)
    summaries: dict[str, ConfigurationSummary] = {}
    tasks: list[CaseTask] = []
    for name in _unique_configurations(plans, configurations):
        summary, todo = _prepare_configuration(workspace, dataset_name, plans, name, labels, labelled, clean=clean,
                                               full_check=full_check)
        summaries[name] = summary
        tasks.extend(dataclasses.replace(t, expected_labels=expected, dataset=dataset_name) for t in todo)
    start = time.perf_counter()
    for result in map_as_completed(preprocess_and_store, tasks, workers=workers, progress=progress,
                                   desc="preprocess", on_failure="Completed cases are kept. "):
        summary = summaries[result.configuration]
        summary.processed.append(result.case_id)
        summary.seconds = time.perf_counter() - start
    copied = copy_ground_truth(((c, f.label) for c, f in labelled.items() if f.label is not None),
                               workspace.gt_segmentations(dataset_name), raw.spec.file_ending)
    log.info("Ground-truth segmentations: %d copied to %s.", copied, workspace.gt_segmentations(dataset_name))
    return list(summaries.values())


def _prepare_configuration(workspace: Workspace, dataset_name: str, plans: Plans, name: str, labels: LabelSpec,
                           cases: dict, *, clean: bool, full_check: bool = False
                           ) -> tuple[ConfigurationSummary, list[CaseTask]]:
    """Clean up the configuration's folder and list the cases that need (re)processing."""
    config = plans.configuration(name)
    folder = workspace.preprocessed_data(dataset_name, config.data_identifier)
    if clean and folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    leftovers = remove_temporary_files(folder)
    if leftovers:
        log.info("Removed %d temporary file(s) of an interrupted run in %s.", leftovers, folder)
    for stale in {p.name[: -len(PROPERTIES_SUFFIX)] for p in folder.glob(f"*{PROPERTIES_SUFFIX}")} - set(cases):
        log.info("Removing stored case %s: it is no longer in the dataset.", stale)
        _remove_case(folder, stale)
    digest = preprocessing_hash(plans, config, labels)
    summary = ConfigurationSummary(configuration=name, folder=folder)
    tasks = []
    for case, files in cases.items():
        if stored_hash(folder, case, full_check=full_check) == digest:
            summary.skipped.append(case)
            continue
        tasks.append(CaseTask(case, tuple(files.images), files.label, plans, name, labels, folder, digest))
    log.info("Preprocessing %s: %d case(s) to do, %d up to date (%s).", name, len(tasks), len(summary.skipped),
             folder)
    return summary, tasks
