"""Build a raw dataset from plain folders of images and labels (the shape of data most users have).

Cases are matched by id: an image ``CASE{ending}`` (one channel) or ``CASE_XXXX{ending}`` (channel files), or one
``--images`` folder per channel holding ``CASE{ending}``, pairs with the label ``CASE{ending}``. Unpaired files are
listed and skipped (or refused with ``strict``). Files are copied (or hard-linked), never moved; files in another
format (or DICOM series folders) are converted to the dataset's file ending. The dataset folder appears atomically.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from autounet._atomic import make_temp_dir
from autounet._log import get_logger
from autounet.dataset.raw import IMAGES_TR, LABELS_TR
from autounet.errors import DatasetError, UsageError
from autounet.schemas.dataset import DatasetSpec, save_dataset_spec
from autounet.workspace import DATASET_JSON, Workspace, dataset_dir_name

_log = get_logger(__name__)
_CHANNEL = re.compile(r"^(?P<case>.+)_(?P<channel>\d{4})$")


@dataclass(frozen=True)
class Unpaired:
    """A source file that was skipped, and why."""

    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.path.name}: {self.reason}"


@dataclass(frozen=True)
class ImportResult:
    """Outcome of :func:`import_folders`."""

    dataset_name: str
    root: Path
    cases: tuple[str, ...]
    unpaired: tuple[Unpaired, ...] = ()
    converted: int = 0
    spec: DatasetSpec | None = field(default=None, repr=False)


@dataclass(frozen=True)
class _SourceCase:
    images: tuple[Path, ...]
    label: Path


def _is_hidden(name: str) -> bool:
    return name.startswith((".", "_"))


def _entries(folder: Path) -> dict[str, Path]:
    """``stem -> path`` of the image files (and DICOM folders) of ``folder``; ``stem`` is the name minus its ending."""
    from autounet.io import file_ending_of

    if not folder.is_dir():
        msg = f"Not a folder: {folder}"
        raise UsageError(msg)
    out: dict[str, Path] = {}
    for entry in sorted(folder.iterdir()):
        if _is_hidden(entry.name) or entry.suffix.lower() in (".json", ".txt", ".md", ".csv"):
            continue
        ending = file_ending_of(entry)
        stem = entry.name[: len(entry.name) - len(ending)] if ending else entry.name
        if stem in out:
            msg = f"Two files in {folder} have the case id {stem!r}: {out[stem].name} and {entry.name}."
            raise DatasetError(msg)
        out[stem] = entry
    return out


def _group_images(image_dirs: Sequence[Path], n_channels: int) -> tuple[dict[str, tuple[Path, ...]], list[Unpaired]]:
    """Channel files per case, from one folder (``CASE`` or ``CASE_XXXX`` names) or one folder per channel."""
    if len(image_dirs) > 1:
        if len(image_dirs) != n_channels:
            msg = f"{len(image_dirs)} --images folders given for {n_channels} channel(s); give one per channel."
            raise UsageError(msg)
        per_dir = [_entries(d) for d in image_dirs]
        common = set.intersection(*(set(e) for e in per_dir))
        skipped = [Unpaired(p, "no file for this case in every --images folder") for e in per_dir
                   for stem, p in e.items() if stem not in common]
        return {c: tuple(e[c] for e in per_dir) for c in sorted(common)}, skipped
    entries = _entries(image_dirs[0])
    channelled = {s: m for s in entries if (m := _CHANNEL.match(s))}
    if n_channels == 1 and len(channelled) < len(entries):
        return {s: (p,) for s, p in entries.items()}, []
    groups: dict[str, dict[int, Path]] = {}
    skipped = [Unpaired(p, "name has no _XXXX channel suffix") for s, p in entries.items() if s not in channelled]
    for stem, m in channelled.items():
        groups.setdefault(m["case"], {})[int(m["channel"])] = entries[stem]
    cases = {}
    for case, files in sorted(groups.items()):
        if sorted(files) != list(range(n_channels)):
            missing = [f"_{i:04d}" for i in range(n_channels) if i not in files]
            extra = [f"_{i:04d}" for i in files if i >= n_channels]
            why = f"channel files {'missing ' + ', '.join(missing) if missing else 'extra ' + ', '.join(extra)}"
            skipped += [Unpaired(p, why) for p in files.values()]
            continue
        cases[case] = tuple(files[i] for i in range(n_channels))
    return cases, skipped


def pair_cases(image_dirs: Sequence[Path], labels_dir: Path, *, n_channels: int
               ) -> tuple[dict[str, _SourceCase], list[Unpaired]]:
    """Match image files and label files by case id; return the pairs and everything left unpaired."""
    images, unpaired = _group_images(image_dirs, n_channels)
    labels = _entries(labels_dir)
    pairs = {c: _SourceCase(images[c], labels[c]) for c in sorted(images) if c in labels}
    unpaired += [Unpaired(images[c][0], "image without a label") for c in sorted(images) if c not in labels]
    unpaired += [Unpaired(labels[c], "label without an image") for c in sorted(labels) if c not in images]
    return pairs, sorted(unpaired, key=lambda u: u.path.name)


def build_spec(*, channels: Sequence[str], labels: Mapping[str, Any], num_training: int, file_ending: str,
               base: Mapping[str, Any] | None = None, name: str | None = None) -> DatasetSpec:
    """A ``DatasetSpec`` from command-line values over an optional base dict (a small JSON given with ``--spec``)."""
    data: dict[str, Any] = dict(base or {})
    if channels:
        data["channel_names"] = {str(i): c for i, c in enumerate(channels)}
    if labels:
        data["labels"] = dict(labels)
    if "channel_names" not in data or "labels" not in data:
        msg = "Give the channel names (--channel) and labels (--label name=value), or a --spec JSON with them."
        raise UsageError(msg)
    data["numTraining"] = num_training
    data["file_ending"] = file_ending
    data.setdefault("name", name)
    data.pop("dataset", None)
    spec = DatasetSpec.from_dict(data, where="import specification")
    from autounet.labels import LabelSpec

    try:
        LabelSpec.from_dataset_spec(spec)
    except DatasetError as exc:
        msg = f"Invalid labels {dict(spec.labels)}: {exc}"
        raise UsageError(msg) from exc
    return spec


def _detect_ending(cases: Mapping[str, _SourceCase], requested: str | None) -> str:
    from autounet.io import file_ending_of

    if requested:
        return requested if requested.startswith(".") else f".{requested}"
    endings = {file_ending_of(p) for c in cases.values() for p in (*c.images, c.label)}
    if len(endings) == 1 and "" not in endings:
        return endings.pop()
    return ".nii.gz"


def _place(src: Path, dst: Path, *, link: bool, segmentation: bool) -> bool:
    """Copy/link ``src`` to ``dst``, converting when the format differs. Returns whether it converted."""
    from autounet.io import file_ending_of, get_reader, reader_for, write_image, write_segmentation

    if src.is_file() and file_ending_of(src).lower() == file_ending_of(dst).lower():
        if link:
            try:
                os.link(src, dst)
                return False
            except OSError:
                _log.warning("Cannot hard-link %s (another file system?); copying instead.", src)
        shutil.copy2(src, dst)
        return False
    reader = get_reader(reader_for(file_ending_of(src), example=src))
    array, geometry = reader.read_one(src, segmentation=segmentation)
    (write_segmentation if segmentation else write_image)(array, dst, geometry)
    return True


def import_folders(images: Path | Sequence[Path], labels: Path, *, workspace: Workspace, dataset_id: int, name: str,
                   channels: Sequence[str] = (), label_values: Mapping[str, Any] | None = None,
                   spec: Mapping[str, Any] | None = None, file_ending: str | None = None, strict: bool = False,
                   link: bool = False, clean: bool = False) -> ImportResult:
    """Create ``raw/DatasetXXX_Name`` from a folder of images and a folder of labels.

    Args:
        images: the images folder, or one folder per channel.
        labels: the labels folder.
        workspace: target workspace.
        dataset_id, name: the new dataset's id and name.
        channels: channel names in order (``--channel``); may come from ``spec`` instead.
        label_values: ``name -> value`` (or list of values for a region); may come from ``spec``.
        spec: base dataset.json keys (``regions_class_order``, ``description``, ...).
        file_ending: target ending; default the sources' common ending (else ``.nii.gz``).
        strict: refuse (``DatasetError``) when any file is unpaired, instead of skipping it.
        link: hard-link instead of copying (falls back to copying across file systems).
        clean: replace an existing dataset folder of the same name.
    """
    image_dirs = [Path(images)] if isinstance(images, (str, os.PathLike)) else [Path(p) for p in images]
    n_channels = len(channels) or len((spec or {}).get("channel_names") or {}) or 1
    pairs, unpaired = pair_cases(image_dirs, Path(labels), n_channels=n_channels)
    if strict and unpaired:
        msg = (f"--strict: {len(unpaired)} unpaired file(s), nothing imported: "
               + "; ".join(str(u) for u in unpaired))
        raise DatasetError(msg)
    if not pairs:
        msg = f"No image/label pairs found between {', '.join(map(str, image_dirs))} and {labels}."
        raise DatasetError(msg)
    ending = _detect_ending(pairs, file_ending)
    dataset_spec = build_spec(channels=channels, labels=label_values or {}, num_training=len(pairs),
                              file_ending=ending, base=spec, name=name)
    target = _prepare_target(workspace, dataset_id, name, clean=clean)
    converted = _write_dataset(pairs, dataset_spec, target, link=link)
    return ImportResult(dataset_name=target.name, root=target, cases=tuple(pairs), unpaired=tuple(unpaired),
                        converted=converted, spec=dataset_spec)


def _prepare_target(workspace: Workspace, dataset_id: int, name: str, *, clean: bool) -> Path:
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.\-]*", name):
        msg = (f"Dataset name {name!r} must start with a letter or digit and hold only letters, digits, '_', '.' "
               "and '-'.")
        raise UsageError(msg)
    dir_name = dataset_dir_name(dataset_id, name)
    prefix = f"Dataset{dataset_id:03d}_"
    for root in (workspace.raw, workspace.preprocessed, workspace.results):
        if root.is_dir():
            clash = [p.name for p in root.iterdir() if p.name.startswith(prefix) and p.name != dir_name]
            if clash:
                msg = f"Dataset id {dataset_id} is already used by {clash[0]} in {root}; choose another --id."
                raise DatasetError(msg)
    target = workspace.raw_dataset(dir_name)
    if target.exists() and not clean:
        msg = f"{target} already exists; pass --clean to replace it."
        raise DatasetError(msg)
    return target


def _write_dataset(pairs: Mapping[str, _SourceCase], spec: DatasetSpec, target: Path, *, link: bool) -> int:
    """Write everything into a hidden temporary folder, then swap it into place."""
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = make_temp_dir(target.parent, prefix=f".{target.name}.")
    try:
        (tmp / IMAGES_TR).mkdir()
        (tmp / LABELS_TR).mkdir()
        converted = 0
        for case, src in pairs.items():
            for i, image in enumerate(src.images):
                converted += _place(image, tmp / IMAGES_TR / f"{case}_{i:04d}{spec.file_ending}", link=link,
                                    segmentation=False)
            converted += _place(src.label, tmp / LABELS_TR / f"{case}{spec.file_ending}", link=link,
                                segmentation=True)
        save_dataset_spec(spec, tmp / DATASET_JSON)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return converted
