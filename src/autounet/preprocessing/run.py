"""``run``: preprocess every training case of a dataset for some configurations, in parallel, resumably.

For each configuration (configurations sharing a data identifier, like ``3d_cascade_fullres`` and ``3d_fullres``,
are processed once) the cases whose stored record is missing or was made with other plans settings are
preprocessed in ``workers`` spawned processes (one case per process at a time, so memory is bounded by the
number of workers) and written to the case store atomically. The ground-truth label files are copied to
``preprocessed/<ds>/gt_segmentations/`` for evaluation.

Several commands may preprocess the same dataset at once (e.g. from two machines on shared storage): each case is
claimed (``.<case>.claim``, :func:`autounet._atomic.try_claim`) while it is processed, a case claimed by a live
process elsewhere is waited for instead of redone, and temporaries of live writers are never removed.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autounet._atomic import atomic_path, claim_is_stale, try_claim, write_json_atomic
from autounet._log import get_logger
from autounet._parallel import map_as_completed
from autounet.errors import DatasetError
from autounet.labels import LabelSpec
from autounet.preprocessing.pipeline import (
    PreprocessedCase,
    _target_spacing,
    preprocess_case,
    preprocessing_hash,
)
from autounet.preprocessing.properties import CaseProperties
from autounet.preprocessing.store import (
    INTEGRITY_FILES,
    PROPERTIES_SUFFIX,
    case_files,
    check_case,
    file_record,
    label_values,
    remove_temporary_files,
    write_case,
)
from autounet.schemas.plans import Plans
from autounet.workspace import Workspace

log = get_logger(__name__)


@dataclass(frozen=True)
class Target:
    """One more configuration a task writes the same case for (see :class:`CaseTask`)."""

    configuration: str
    folder: Path
    plans_sha256: str


@dataclass(frozen=True)
class CaseTask:
    """Everything a worker needs to preprocess and store one case (picklable).

    ``also``: further configurations of the same case. The case is read once; configurations whose preprocessing
    gives the same arrays for this case (same normalization, resampling and target spacing - e.g. ``2d`` and
    ``3d_fullres`` of isotropic data) share one preprocessing, and small arrays are hard-linked, not rewritten.
    """

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
    also: tuple[Target, ...] = ()

    def targets(self) -> tuple[Target, ...]:
        """Every configuration of this task, the main one first."""
        return (Target(self.configuration, self.folder, self.plans_sha256), *self.also)


@dataclass(frozen=True)
class CaseResult:
    """What a worker reports back (``also``: the results of the task's further configurations)."""

    case_id: str
    configuration: str
    shape: tuple[int, ...]
    seconds: float
    #: ``processed`` (written here), ``claimed`` (another live process is on it), ``done`` (found up to date)
    status: str = "processed"
    also: tuple[CaseResult, ...] = ()

    def all(self) -> tuple[CaseResult, ...]:
        """This result and those of the further configurations."""
        return (self, *self.also)


#: arrays up to this size are hard-linked between configurations with identical preprocessing (a 2D patch read
#: from the other configuration's chunk layout then decompresses at most this much); larger ones are rewritten
LINK_MAX_BYTES = 1 << 20
CLAIM_SUFFIX = ".claim"
#: how often a run waiting for cases claimed by another run looks again (seconds)
CLAIM_POLL_S = 0.5


def claim_path(folder: Path, case: str) -> Path:
    """The claim file of a case while a process preprocesses it."""
    return folder / f".{case}{CLAIM_SUFFIX}"


@dataclass
class ConfigurationSummary:
    """Outcome of one configuration: its folder, the cases written and the cases already up to date."""

    configuration: str
    folder: Path
    processed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    seconds: float = 0.0


def preprocess_and_store(task: CaseTask) -> CaseResult:
    """Claim one case, read, preprocess and write it to the store for each configuration (runs in a worker).

    A configuration whose case is claimed by another live process is left to it (status ``claimed``); one found
    up to date once claimed is not redone (status ``done``).
    """
    start = time.perf_counter()
    with contextlib.ExitStack() as stack:
        results: list[CaseResult] = []
        todo: list[Target] = []
        for target in task.targets():
            claim = try_claim(claim_path(target.folder, task.case_id))
            if claim is None:
                results.append(CaseResult(task.case_id, target.configuration, (), 0.0, status="claimed"))
                continue
            stack.enter_context(claim)
            if stored_hash(target.folder, task.case_id) == target.plans_sha256:
                results.append(CaseResult(task.case_id, target.configuration, (), 0.0, status="done"))
            else:
                todo.append(target)
        if todo:
            results.extend(_preprocess_and_store(task, todo, start))
    order = {t.configuration: i for i, t in enumerate(task.targets())}
    results.sort(key=lambda r: order[r.configuration])
    return dataclasses.replace(results[0], also=tuple(results[1:]))


def _sharing_key(task: CaseTask, name: str, spacing: tuple[float, ...]) -> str:
    """What determines a configuration's arrays for this case: equal keys give identical arrays."""
    config = task.plans.configuration(name)
    return json.dumps([config.preprocessor, [c.to_dict() for c in config.normalization],
                       config.resampling_data.to_dict(), config.resampling_seg.to_dict(),
                       list(_target_spacing(config, spacing))], sort_keys=True)


def _preprocess_and_store(task: CaseTask, targets: Sequence[Target], start: float) -> list[CaseResult]:
    """Read the case once, enforce ``verify``'s per-case contract (no NaN/Inf, only declared label values, label
    geometry matching the image), then preprocess and store it for each target configuration."""
    from autounet.dataset._case_checks import check_read_case, raise_for_problems
    from autounet.io import read_images, read_segmentation

    reader = task.plans.image_reader_writer
    images, geometry = read_images(list(task.images), reader=reader)
    seg, seg_geometry = read_segmentation(task.label, reader=reader) if task.label is not None else (None, None)
    raise_for_problems(check_read_case(task.case_id, images, geometry, task.images, seg, seg_geometry, task.label,
                                       expected_labels=task.expected_labels), dataset=task.dataset)
    spacing = tuple(float(geometry.spacing[t]) for t in task.plans.transpose_forward)
    done: dict[str, tuple[Target, PreprocessedCase]] = {}
    results = []
    for i, target in enumerate(targets):
        config = task.plans.configuration(target.configuration)
        key = _sharing_key(task, target.configuration, spacing)
        if key in done:
            source, case = done[key]
            props = dataclasses.replace(case.properties, configuration=config.name,
                                        plans_sha256=target.plans_sha256, label_values=label_values(case.seg))
            if case.data.nbytes <= LINK_MAX_BYTES and _link_case(source.folder, target.folder, props):
                pass
            else:
                write_case(target.folder, case.data, case.seg, props, patch_size=config.patch_size)
        else:
            last = i == len(targets) - 1
            case = preprocess_case(images if last else images.copy(), seg, geometry, task.plans, config,
                                   labels=task.labels, case_id=task.case_id, plans_sha256=target.plans_sha256,
                                   copy=False)
            write_case(target.folder, case.data, case.seg, case.properties, patch_size=config.patch_size)
            done[key] = (target, case)
        results.append(CaseResult(task.case_id, target.configuration, tuple(case.data.shape),
                                  time.perf_counter() - start))
    return results


def _link_case(source: Path, folder: Path, props: CaseProperties) -> bool:
    """Hard-link a stored case's array files into ``folder`` and write its own record; False if links fail."""
    src, dst = case_files(source, props.case_id), case_files(folder, props.case_id)
    folder.mkdir(parents=True, exist_ok=True)
    dst["properties"].unlink(missing_ok=True)
    try:
        for kind in ("data", "seg", "locations"):
            with atomic_path(dst[kind]) as tmp:
                tmp.unlink()
                os.link(src[kind], tmp)
    except OSError:  # no hard links on this file system: the caller writes the files
        return False
    record = dataclasses.replace(props, files={k: file_record(dst[k]) for k in INTEGRITY_FILES})
    write_json_atomic(dst["properties"], record.to_json_dict())
    return True


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
    """Copy label files to ``target_folder/<case><ending>`` when missing or older than the source.

    ``ending`` is :func:`autounet.io.segmentation_ending` of the dataset's ``file_ending``: DICOM labels (series
    folders, ``.dcm`` SEG files) are converted to ``.nii.gz`` label maps, which evaluation reads next to the
    ``.nii.gz`` predictions of DICOM cases; other label files are copied unchanged.

    Raises:
        DatasetError: a label cannot be read or converted (naming the case and the file).
    """
    from autounet.io import segmentation_ending

    ending = segmentation_ending(file_ending)
    copied = 0
    target_folder.mkdir(parents=True, exist_ok=True)
    for case, source in cases:
        target = target_folder / f"{case}{ending}"
        if target.is_file() and target.stat().st_mtime >= _modified(source):
            continue
        if source.is_dir() or ending != file_ending:
            _convert_label(case, source, target)
        else:
            with atomic_path(target) as tmp:
                shutil.copy2(source, tmp)
        copied += 1
    return copied


def _modified(path: Path) -> float:
    """Modification time of a file, or the latest of a folder and the files in it (a DICOM series)."""
    if not path.is_dir():
        return path.stat().st_mtime
    return max([path.stat().st_mtime, *(p.stat().st_mtime for p in path.iterdir() if p.is_file())])


def _convert_label(case: str, source: Path, target: Path) -> None:
    """Write the label map of ``source`` (a DICOM series folder or a file another reader reads) to ``target``."""
    from autounet.errors import AutounetError
    from autounet.io import read_segmentation, write_segmentation

    try:
        seg, geometry = read_segmentation(source)
        write_segmentation(seg, target, geometry)
    except AutounetError as exc:
        msg = f"case {case}: cannot store the ground truth {source} as {target.name}: {exc}"
        raise DatasetError(msg) from exc


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
        full_check: bool = False, executor: Any | None = None) -> list[ConfigurationSummary]:
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
        executor: where the cases run (e.g. a ``dask.distributed.Client``); default: the one installed with
            :func:`autounet._parallel.using`, else ``workers`` local processes.

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
    per_case: dict[str, list[CaseTask]] = {}
    for name in _unique_configurations(plans, configurations):
        summary, todo = _prepare_configuration(workspace, dataset_name, plans, name, labels, labelled, clean=clean,
                                               full_check=full_check)
        summaries[name] = summary
        for task in todo:
            per_case.setdefault(task.case_id, []).append(
                dataclasses.replace(task, expected_labels=expected, dataset=dataset_name))
    # one task per case: read once, share identical preprocessing between configurations
    tasks = [dataclasses.replace(first, also=tuple(Target(t.configuration, t.folder, t.plans_sha256) for t in rest))
             for first, *rest in per_case.values()]
    if tasks:
        import blosc2  # noqa: F401 - imported once here: forked workers inherit it instead of each importing it

    start = time.perf_counter()
    elsewhere: list[CaseTask] = []
    by_case = {(t.configuration, t.case_id): t for tasks_ in per_case.values() for t in tasks_}
    for result in map_as_completed(preprocess_and_store, tasks, workers=workers, progress=progress,
                                   desc="preprocess", on_failure="Completed cases are kept. ", executor=executor):
        for one in result.all():
            _record(summaries[one.configuration], one, start, elsewhere, by_case)
    while elsewhere:  # cases another live run is working on: wait for them, take over if that run dies
        time.sleep(CLAIM_POLL_S)
        waiting, elsewhere = elsewhere, []
        for task in waiting:
            if stored_hash(task.folder, task.case_id) == task.plans_sha256:
                summaries[task.configuration].skipped.append(task.case_id)
            elif claim_is_stale(claim_path(task.folder, task.case_id)):
                for one in preprocess_and_store(task).all():
                    _record(summaries[one.configuration], one, start, elsewhere, by_case)
            else:
                elsewhere.append(task)
    copied = copy_ground_truth(((c, f.label) for c, f in labelled.items() if f.label is not None),
                               workspace.gt_segmentations(dataset_name), raw.spec.file_ending)
    log.info("Ground-truth segmentations: %d copied to %s.", copied, workspace.gt_segmentations(dataset_name))
    return list(summaries.values())


def _record(summary: ConfigurationSummary, result: CaseResult, start: float, elsewhere: list[CaseTask],
            by_case: dict[tuple[str, str], CaseTask]) -> None:
    if result.status == "claimed":
        elsewhere.append(by_case[(result.configuration, result.case_id)])
        return
    (summary.processed if result.status == "processed" else summary.skipped).append(result.case_id)
    summary.seconds = time.perf_counter() - start


def _remove_stale_claims(folder: Path) -> None:
    for path in folder.glob(f".*{CLAIM_SUFFIX}"):
        if claim_is_stale(path):
            path.unlink(missing_ok=True)


def _prepare_configuration(workspace: Workspace, dataset_name: str, plans: Plans, name: str, labels: LabelSpec,
                           cases: dict, *, clean: bool, full_check: bool = False
                           ) -> tuple[ConfigurationSummary, list[CaseTask]]:
    """Clean up the configuration's folder and list the cases that need (re)processing."""
    config = plans.configuration(name)
    folder = workspace.preprocessed_data(dataset_name, config.data_identifier)
    if clean and folder.exists():
        shutil.rmtree(folder)
    folder.mkdir(parents=True, exist_ok=True)
    _remove_stale_claims(folder)
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
