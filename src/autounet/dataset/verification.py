"""``verify``: check a raw dataset before any expensive step and report ALL problems at once.

Dataset-level checks (dataset.json, folders, numTraining, labels, duplicates, stray files) run first; per-case
checks (channel files, readability, NaN/Inf, empty images, label values, geometry agreement) run in parallel over
cases. Nothing is ever modified. Each problem names the case, the file and what is wrong.
"""

from __future__ import annotations

import json
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from autounet._atomic import write_json_atomic
from autounet._parallel import current_executor, map_ordered
from autounet.dataset import small
from autounet.dataset._case_checks import CaseContext, Problem, Tolerances, check_case
from autounet.dataset.raw import (
    IMAGES_TR,
    LABELS_TR,
    CaseFiles,
    RawDataset,
    discover,
    locate_dataset,
)
from autounet.errors import AutounetError, DatasetError
from autounet.schemas.dataset import DatasetSpec, load_dataset_spec
from autounet.workspace import DATASET_JSON, Workspace

__all__ = ["Problem", "Tolerances", "VerificationReport", "verify"]

#: fewer cases than this per worker are checked in this process (small datasets finish before workers start)
_CASES_PER_WORKER = 24


@dataclass(frozen=True)
class VerificationReport:
    """Outcome of :func:`verify`: ``ok`` when there are no problems (warnings do not count)."""

    dataset: str
    root: Path
    n_cases: int
    problems: tuple[Problem, ...]
    warnings: tuple[Problem, ...] = ()
    seconds: float = 0.0
    reader: str | None = None

    @property
    def ok(self) -> bool:
        """No problems found."""
        return not self.problems

    def counts(self) -> dict[str, int]:
        """Number of problems per check name."""
        return dict(Counter(p.check for p in self.problems))

    def to_dict(self) -> dict[str, Any]:
        """Machine-readable form (written by ``autounet verify --json``)."""
        return {
            "dataset": self.dataset,
            "root": str(self.root),
            "ok": self.ok,
            "n_cases": self.n_cases,
            "reader": self.reader,
            "seconds": round(self.seconds, 3),
            "n_problems": len(self.problems),
            "problems_per_check": self.counts(),
            "problems": [p.to_dict() for p in self.problems],
            "warnings": [p.to_dict() for p in self.warnings],
        }

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write :meth:`to_dict` as JSON, atomically."""
        write_json_atomic(path, self.to_dict())

    def format(self) -> str:
        """Human-readable text: every problem on one line, then warnings and a summary."""
        lines = [f"ERROR   {p}" for p in self.problems] + [f"WARNING {w}" for w in self.warnings]
        if self.ok:
            lines.append(f"{self.dataset}: OK, {self.n_cases} cases checked in {self.seconds:.1f} s"
                         f"{f' ({len(self.warnings)} warning(s))' if self.warnings else ''}.")
        else:
            per = ", ".join(f"{k}: {v}" for k, v in sorted(self.counts().items()))
            lines.append(f"{self.dataset}: {len(self.problems)} problem(s) in {self.n_cases} cases ({per}).")
        return "\n".join(lines)


def verify(dataset: str | int | os.PathLike[str] | RawDataset, *, workspace: Workspace | None = None,
           workers: int = 2, progress: bool = False, tolerances: Tolerances | None = None,
           allow_external: bool | None = None) -> VerificationReport:
    """Check a raw dataset and report every problem found.

    Args:
        dataset: folder path, id, name (with ``workspace``) or an opened ``RawDataset``.
        workspace: where ids and names are looked up.
        workers: processes for the per-case checks (1 = in this process; fewer than 24 cases per worker run
            in this process too, since starting a worker costs about a second).
        progress: show a progress bar (the CLI enables it on terminals).
        tolerances: geometry tolerances between channels and label.
        allow_external: whether a ``dataset`` listing may name files outside the dataset folder (default: the
            workspace's ``allow_external_data``, else ``False``); such a file is a problem otherwise.

    Raises:
        DatasetError: the dataset folder cannot be found at all. Everything else is reported, not raised.
    """
    start = time.perf_counter()
    root = locate_dataset(dataset, workspace)
    tol = tolerances or Tolerances()
    problems: list[Problem] = []
    warnings: list[Problem] = []
    spec = _load_spec(root, problems)
    if spec is None:
        return VerificationReport(dataset=root.name, root=root, n_cases=0, problems=tuple(problems),
                                  seconds=time.perf_counter() - start)
    problems += _duplicate_keys(root / DATASET_JSON)
    if spec.dataset is None:
        problems += _folder_problems(root)
    if allow_external is None:
        allow_external = workspace.allow_external_data if workspace is not None else False
    try:
        cases, stray = discover(root, spec, allow_external=allow_external)
    except AutounetError as exc:  # an unsafe case id, a listed file outside the dataset folder, a link loop
        problems.append(Problem("case_discovery", str(exc)))
        return VerificationReport(dataset=root.name, root=root, n_cases=0, problems=tuple(problems),
                                  seconds=time.perf_counter() - start)
    raw = RawDataset(name=root.name, root=root, spec=spec, cases=cases, stray_files=stray)
    problems += _dataset_problems(raw)
    labelled = sum(1 for files in cases.values() if files.label is not None)
    if cases and small.is_small(labelled):
        warnings.append(Problem("few_cases", small.advice(labelled, dataset=root.name)))
    expected = _expected_labels(spec, problems)
    reader = _choose_reader(raw, problems, warnings)
    ctx = CaseContext(n_channels=spec.num_channels, file_ending=spec.file_ending, reader=reader,
                      expected_labels=expected, tolerances=tol, explicit=spec.dataset is not None)
    for case_problems, case_warnings in _run_cases(cases, ctx, workers=workers, progress=progress):
        problems += case_problems
        warnings += case_warnings
    return VerificationReport(dataset=root.name, root=root, n_cases=len(cases), problems=tuple(problems),
                              warnings=tuple(warnings), seconds=time.perf_counter() - start, reader=reader)


# ---- dataset-level checks ------------------------------------------------------------------------------------------
def _load_spec(root: Path, problems: list[Problem]) -> DatasetSpec | None:
    path = root / DATASET_JSON
    try:
        return load_dataset_spec(path)
    except AutounetError as exc:
        problems.append(Problem("dataset_json", str(exc), file=str(path)))
        return None


def _duplicate_keys(path: Path) -> list[Problem]:
    """Keys given twice in one JSON object (JSON parsers silently keep the last one)."""
    found: list[Problem] = []

    def hook(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        counts = Counter(k for k, _ in pairs)
        for key, n in counts.items():
            if n > 1:
                found.append(Problem("duplicate_case" if key not in ("labels", "channel_names") else "dataset_json",
                                     f"key {key!r} appears {n} times in one object of dataset.json; only the last "
                                     "one counts", case=key, file=str(path)))
        return dict(pairs)

    try:
        json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=hook)
    except (OSError, ValueError):
        return []
    return found


def _folder_problems(root: Path) -> list[Problem]:
    return [Problem("missing_folder", f"folder {name}/ is missing (needed without the 'dataset' key in "
                    "dataset.json)", file=str(root / name))
            for name in (IMAGES_TR, LABELS_TR) if not (root / name).is_dir()]


def _dataset_problems(raw: RawDataset) -> list[Problem]:
    spec, problems = raw.spec, []
    if not raw.cases:
        problems.append(Problem("no_cases", f"no training cases found (image files must be named "
                                f"CASE_0000{spec.file_ending} in {IMAGES_TR}/)", file=str(raw.root / IMAGES_TR)))
    if spec.num_training != len(raw.cases):
        problems.append(Problem("num_training", f"numTraining is {spec.num_training} but {len(raw.cases)} cases "
                                "were found", file=str(raw.dataset_json)))
    problems += _duplicate_cases(raw.cases)
    for path in raw.stray_files:
        problems.append(Problem("extra_file", f"image file not named CASE_XXXX{spec.file_ending} (4-digit channel "
                                "index); it belongs to no case", file=str(path)))
    if raw.spec.dataset is None:
        problems += _unexpected_files(raw)
    return problems


def _duplicate_cases(cases: dict[str, CaseFiles]) -> list[Problem]:
    problems = []
    by_lower: dict[str, list[str]] = {}
    for case in cases:
        by_lower.setdefault(case.lower(), []).append(case)
    for names in by_lower.values():
        if len(names) > 1:
            problems.append(Problem("duplicate_case", f"case ids {', '.join(names)} differ only in letter case and "
                                    "collide on case-insensitive file systems", case=names[0]))
    users: dict[Path, list[str]] = {}
    for case, files in cases.items():
        for f in (*files.images, *((files.label,) if files.label else ())):
            users.setdefault(Path(os.path.realpath(f)), []).append(case)
    for f, owners in users.items():
        if len(set(owners)) > 1:
            sharing = ", ".join(sorted(set(owners)))
            problems.append(Problem("duplicate_case", f"the same file is used by cases {sharing}", case=owners[0],
                                    file=str(f)))
    return problems


def _unexpected_files(raw: RawDataset) -> list[Problem]:
    """Labels without a case, and image-like files whose ending is not the dataset's."""
    from autounet.io import file_ending_of, reader_for

    ending, problems = raw.spec.file_ending, []
    labels_dir = raw.root / LABELS_TR
    if labels_dir.is_dir():
        for entry in sorted(labels_dir.iterdir()):
            if entry.name.startswith((".", "_")) or not entry.name.endswith(ending):
                continue
            case = entry.name[: -len(ending)]
            if case not in raw.cases:
                problems.append(Problem("label_without_images", f"label file has no image files "
                                        f"({IMAGES_TR}/{case}_0000{ending} is missing)", case=case, file=str(entry)))
    for folder in (raw.root / IMAGES_TR, labels_dir):
        if not folder.is_dir():
            continue
        for entry in sorted(folder.iterdir()):
            if entry.name.startswith((".", "_")) or entry.name.endswith(ending) or not entry.is_file():
                continue
            other = file_ending_of(entry)
            if other == ".json" or not other:
                continue
            try:
                reader_for(other)
            except AutounetError:
                continue
            problems.append(Problem("extra_file", f"ends with {other} but dataset.json says file_ending {ending}; "
                                    "it is ignored", file=str(entry)))
    return problems


def _expected_labels(spec: DatasetSpec, problems: list[Problem]) -> tuple[int, ...] | None:
    from autounet.labels import LabelSpec

    try:
        labels = LabelSpec.from_dataset_spec(spec)
    except AutounetError as exc:
        check = "ignore_label" if "ignore" in str(exc) else "labels"
        problems.append(Problem(check, f"dataset.json labels: {exc}"))
        return None
    values = sorted(labels.expected_values)
    gaps = [b for a, b in zip(values, values[1:]) if b - a != 1]
    if gaps:
        problems.append(Problem("labels", f"dataset.json label values must be consecutive (0, 1, 2, ...); got "
                                f"{values}"))
    return tuple(values)


def expected_label_values(spec: DatasetSpec, *, file: str | os.PathLike[str] | None = None) -> tuple[int, ...]:
    """The label values a label file may hold, for the stages that enforce verify's contract.

    Raises:
        DatasetError: dataset.json's labels are refused by ``verify`` (one line).
    """
    problems: list[Problem] = []
    values = _expected_labels(spec, problems)
    if problems or values is None:
        where = f"{file}: " if file else "dataset.json: "
        raise DatasetError(f"{where}{problems[0].message}" if problems else f"{where}labels cannot be read")
    return values


def _choose_reader(raw: RawDataset, problems: list[Problem], warnings: list[Problem]) -> str | None:
    from autounet.io import READERS

    override = raw.spec.overwrite_image_reader_writer
    if override is not None and override not in READERS:
        warnings.append(Problem("reader", f"overwrite_image_reader_writer {override!r} is not a known reader "
                                f"({', '.join(READERS.names())}); choosing by file ending",
                                file=str(raw.dataset_json)))
    try:
        return raw.reader_name()
    except AutounetError as exc:
        problems.append(Problem("reader", str(exc), file=str(raw.example_image() or raw.dataset_json)))
        return None


# ---- per-case checks in parallel -----------------------------------------------------------------------------------
def _run_cases(cases: dict[str, CaseFiles], ctx: CaseContext, *, workers: int, progress: bool
               ) -> Iterable[tuple[list[Problem], list[Problem]]]:
    bar = _progress_bar(len(cases), enabled=progress)
    workers = min(workers, len(cases) // _CASES_PER_WORKER)  # starting a process costs about a second
    if workers <= 1 and current_executor() is None:
        for case, files in cases.items():
            result = check_case(case, files, ctx)
            bar(1)
            yield result
        bar(0, close=True)
        return
    items = [(case, files, ctx) for case, files in cases.items()]
    for result in map_ordered(_check_item, items, workers=workers, desc="verify"):
        bar(1)
        yield result
    bar(0, close=True)


def _check_item(item: tuple[str, CaseFiles, CaseContext]) -> tuple[list[Problem], list[Problem]]:
    return check_case(*item)


def _progress_bar(total: int, *, enabled: bool) -> Callable[..., None]:
    if not enabled:
        return lambda n, close=False: None
    from tqdm import tqdm

    bar = tqdm(total=total, desc="verify", unit="case")

    def update(n: int, close: bool = False) -> None:
        bar.update(n)
        if close:
            bar.close()

    return update
