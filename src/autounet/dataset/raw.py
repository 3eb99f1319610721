"""Raw dataset discovery: ``DatasetXXX_Name/{dataset.json, imagesTr, labelsTr, imagesTs}`` as the reference finds it.

Case ids come from ``imagesTr`` files named ``{CASE}_{CCCC}{file_ending}``; a case's channel files are those
matching ``{CASE}_\\d{4}{file_ending}`` (sorted); its label is ``labelsTr/{CASE}{file_ending}``. With the explicit
``dataset`` key of dataset.json, the listed files are used instead (paths relative to the dataset folder).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from autounet._log import get_logger
from autounet.errors import DatasetError
from autounet.names import check_inside, check_name
from autounet.schemas.dataset import CaseEntry, DatasetSpec, load_dataset_spec
from autounet.workspace import DATASET_JSON, Workspace

_log = get_logger(__name__)

IMAGES_TR, LABELS_TR, IMAGES_TS = "imagesTr", "labelsTr", "imagesTs"


@dataclass(frozen=True)
class CaseFiles:
    """The files of one case: one image file per channel file (sorted by channel index) and the label, if any."""

    images: tuple[Path, ...]
    label: Path | None = None


@dataclass(frozen=True)
class RawDataset:
    """A raw dataset folder with its parsed ``dataset.json`` and discovered training cases.

    Attributes:
        name: folder name (``Dataset004_Hippocampus``).
        root: the dataset folder.
        spec: the parsed ``dataset.json``.
        cases: ``case id -> CaseFiles``, sorted by case id.
        stray_files: files in ``imagesTr`` with the dataset's ending that are not named ``{CASE}_{CCCC}{ending}``.
    """

    name: str
    root: Path
    spec: DatasetSpec
    cases: dict[str, CaseFiles]
    stray_files: tuple[Path, ...] = field(default=())

    @property
    def case_ids(self) -> list[str]:
        """Sorted case ids."""
        return list(self.cases)

    @property
    def dataset_json(self) -> Path:
        """Path of ``dataset.json``."""
        return self.root / DATASET_JSON

    @property
    def explicit(self) -> bool:
        """Whether the cases come from dataset.json's ``dataset`` key."""
        return self.spec.dataset is not None

    def example_image(self) -> Path | None:
        """The first image of the first case (used to choose the reader, as the reference does)."""
        for files in self.cases.values():
            if files.images:
                return files.images[0]
        return None

    def require_files(self) -> None:
        """Raise ``DatasetError`` naming the case and file when a listed image or label file does not exist (a
        folder is a DICOM series: the DICOM reader reads it, and says so when it holds none)."""
        for case, files in self.cases.items():
            for path in (*files.images, *((files.label,) if files.label is not None else ())):
                if not (os.path.isfile(path) or os.path.isdir(path)):
                    msg = (f"case {case}: {path} does not exist or is not a file or DICOM series folder (listed in "
                           f"{self.dataset_json} or found in imagesTr). Restore it or remove the case; "
                           "`autounet verify` lists every problem.")
                    raise DatasetError(msg)

    def reader_name(self) -> str:
        """The reader for this dataset: ``overwrite_image_reader_writer`` when it names a known reader, else
        automatic selection by file ending probing the first image."""
        from autounet.io import READERS, reader_for

        override = self.spec.overwrite_image_reader_writer
        if override is not None:
            if override in READERS:
                return READERS.canonical(override)
            _log.warning("%s: overwrite_image_reader_writer %r is not a known reader (%s); choosing automatically.",
                         self.dataset_json, override, ", ".join(READERS.names()))
        return reader_for(self.spec.file_ending, example=self.example_image())

    def test_cases(self) -> dict[str, tuple[Path, ...]]:
        """Channel files of the cases in ``imagesTs`` (empty when the folder is absent)."""
        return group_channel_files(self.root / IMAGES_TS, self.spec.file_ending)[0]


def channel_file_pattern(file_ending: str) -> re.Pattern[str]:
    """``^(CASE)_(CCCC)<ending>$``."""
    return re.compile(rf"^(?P<case>.+)_(?P<channel>\d{{4}}){re.escape(file_ending)}$")


def group_channel_files(folder: Path, file_ending: str) -> tuple[dict[str, tuple[Path, ...]], tuple[Path, ...]]:
    """Group ``{CASE}_{CCCC}{ending}`` files of ``folder`` by case id (sorted by name).

    Returns ``(cases, stray)``: ``stray`` are files with the ending that do not follow the channel naming.
    Hidden files (``.``/``_`` prefixes, e.g. macOS ``._`` files) are ignored.
    """
    if not folder.is_dir():
        return {}, ()
    pattern = channel_file_pattern(file_ending)
    groups: dict[str, list[Path]] = {}
    stray: list[Path] = []
    for entry in sorted(os.scandir(folder), key=lambda e: e.name):
        if entry.name.startswith((".", "_")) or not entry.name.endswith(file_ending):
            continue
        match = pattern.match(entry.name)
        if match is None:
            stray.append(Path(entry.path))
            continue
        check_name(match["case"], what="case id", where=entry.path, error=DatasetError)
        if not _is_file(entry):  # follows links: a broken link, a link loop or a folder
            msg = (f"{entry.path}: not a readable file (a folder, a broken symbolic link or a link loop). "
                   "Remove it or make it point to the image.")
            raise DatasetError(msg)
        groups.setdefault(match["case"], []).append(Path(entry.path))
    return {case: tuple(groups[case]) for case in sorted(groups)}, tuple(stray)


def _is_file(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_file()
    except OSError:  # a symbolic link loop
        return False


def _explicit_cases(root: Path, listing: Mapping[str, CaseEntry], environ: Mapping[str, str] | None, *,
                    allow_external: bool) -> dict[str, CaseFiles]:
    def resolve(case: str, p: str) -> Path:
        if environ is not None:
            p = _expand(p, environ)
        path = Path(p).expanduser()
        path = path if path.is_absolute() else root / path
        if not allow_external:
            check_inside(path, root, what=f"{root / DATASET_JSON}: case {case!r} in 'dataset' lists the file",
                         error=DatasetError, hint="Move the file into the dataset folder, or pass "
                         "--allow-external-data (allow_external_data=True) if you trust this dataset.json.")
        return path

    return {case: CaseFiles(images=tuple(resolve(case, p) for p in entry.images),
                            label=None if entry.label is None else resolve(case, entry.label))
            for case, entry in sorted(listing.items())}


def _expand(text: str, environ: Mapping[str, str]) -> str:
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", lambda m: environ.get(m[1] or m[2], m[0]), text)


def discover(root: Path, spec: DatasetSpec, *, environ: Mapping[str, str] | None = None,
             allow_external: bool = False) -> tuple[dict[str, CaseFiles], tuple[Path, ...]]:
    """Cases of a raw dataset folder (explicit listing or ``imagesTr``/``labelsTr``) and stray files.

    A ``dataset`` listing's files must resolve inside ``root`` unless ``allow_external`` (``DatasetError``).
    """
    if spec.dataset is not None:
        return _explicit_cases(root, spec.dataset, environ, allow_external=allow_external), ()
    groups, stray = group_channel_files(root / IMAGES_TR, spec.file_ending)
    labels = root / LABELS_TR
    cases = {}
    for case, images in groups.items():
        label = labels / f"{case}{spec.file_ending}"
        cases[case] = CaseFiles(images=images, label=label if label.exists() else None)
    return cases, stray


def locate_dataset(dataset: str | int | os.PathLike[str] | RawDataset, workspace: Workspace | None = None) -> Path:
    """The folder of a dataset given by path, id or name (id and name need ``workspace``)."""
    if isinstance(dataset, RawDataset):
        return dataset.root
    text = os.fspath(dataset) if not isinstance(dataset, int) else str(dataset)
    path = Path(text).expanduser()
    if path.is_dir() and not isinstance(dataset, int) and not text.isdigit():
        return path.resolve()
    if workspace is None:
        msg = f"Dataset {text!r} is not a folder; give its path, or a workspace to look ids and names up in."
        raise DatasetError(msg)
    folder = workspace.raw_dataset(workspace.find_dataset(text))
    if not folder.is_dir():
        msg = f"Dataset {text!r} has no raw folder: {folder} does not exist."
        raise DatasetError(msg)
    return folder


def open_raw_dataset(dataset: str | int | os.PathLike[str], workspace: Workspace | None = None, *,
                     environ: Mapping[str, str] | None = None, allow_external: bool | None = None) -> RawDataset:
    """Open a raw dataset by path, id (``4``) or name (``Dataset004_Hippocampus``).

    Args:
        dataset: folder path, id or name (ids and names are looked up in ``workspace.raw``).
        workspace: the workspace for ids and names.
        environ: variables to expand in explicit ``dataset`` listing paths (``$VAR``); ``None`` expands nothing.
        allow_external: whether listed files may lie outside the dataset folder (default: the workspace's
            ``allow_external_data``, else ``False``).

    Raises:
        DatasetError: the dataset cannot be found; SchemaError: its dataset.json is missing or invalid.
    """
    root = locate_dataset(dataset, workspace)
    spec = load_dataset_spec(root / DATASET_JSON)
    if allow_external is None:
        allow_external = workspace.allow_external_data if workspace is not None else False
    cases, stray = discover(root, spec, environ=environ, allow_external=allow_external)
    return RawDataset(name=root.name, root=root, spec=spec, cases=cases, stray_files=stray)
