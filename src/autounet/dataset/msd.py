"""Convert a Medical Segmentation Decathlon task folder (``TaskNN_Name``) into a raw dataset.

4D images are split into one file per channel (keeping the first three spacing/origin components and the upper-left
3x3 of the direction), 3D images are copied as ``_0000``, labels are copied unchanged, and ``dataset.json`` gets the
reference's keys (labels inverted to ``name -> value``, ``modality`` -> ``channel_names``, ``file_ending``).
"""

from __future__ import annotations

import os
import re
import shutil
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import numpy as np

from autounet._atomic import make_temp_dir
from autounet.dataset.importer import _prepare_target
from autounet.dataset.raw import IMAGES_TR, IMAGES_TS, LABELS_TR
from autounet.errors import DatasetError, ImageIOError
from autounet.schemas._base import read_json
from autounet.schemas.dataset import DatasetSpec, save_dataset_spec
from autounet.workspace import DATASET_JSON, Workspace

_TASK = re.compile(r"^Task(?P<id>\d+)_(?P<name>.+)$")
_ENDING = ".nii.gz"


def split_4d(src: Path, dst_folder: Path, case: str) -> int:
    """Write ``src`` as ``case_XXXX.nii.gz`` channel files; returns the number of channels."""
    import SimpleITK as sitk

    try:
        image = sitk.ReadImage(str(src))
    except RuntimeError as exc:
        msg = f"Cannot read MSD image {src}: {exc}".splitlines()[0]
        raise ImageIOError(msg) from exc
    dim = image.GetDimension()
    if dim == 3:
        shutil.copy2(src, dst_folder / f"{case}_0000{_ENDING}")
        return 1
    if dim != 4:
        msg = f"MSD image {src} is {dim}D; only 3D and 4D images are supported."
        raise ImageIOError(msg)
    array = sitk.GetArrayFromImage(image)  # (c, z, y, x)
    spacing, origin = image.GetSpacing()[:3], image.GetOrigin()[:3]
    direction = tuple(np.asarray(image.GetDirection()).reshape(4, 4)[:3, :3].ravel())
    for c in range(array.shape[0]):
        channel = sitk.GetImageFromArray(array[c], isVector=False)
        channel.SetSpacing(spacing)
        channel.SetOrigin(origin)
        channel.SetDirection(direction)
        sitk.WriteImage(channel, str(dst_folder / f"{case}_{c:04d}{_ENDING}"), True)
    return int(array.shape[0])


def convert_spec(msd: dict[str, Any], *, num_training: int) -> DatasetSpec:
    """The reference-format ``DatasetSpec`` of an MSD ``dataset.json``."""
    data = {k: v for k, v in msd.items() if k not in ("modality", "training", "test", "labels", "numTest",
                                                       "tensorImageSize")}
    data["channel_names"] = msd.get("modality") or msd.get("channel_names")
    data["labels"] = {str(name): int(value) for value, name in msd.get("labels", {}).items()}
    data["numTraining"] = num_training
    data["file_ending"] = _ENDING
    return DatasetSpec.from_dict(data, where="MSD dataset.json")


def _images(folder: Path) -> list[Path]:
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.name.endswith(_ENDING) and not p.name.startswith((".", "_")))


def convert_msd(task_dir: str | os.PathLike[str], *, workspace: Workspace, dataset_id: int | None = None,
                workers: int = 2, clean: bool = False) -> str:
    """Convert ``TaskNN_Name`` into ``raw/DatasetNNN_Name``; returns the dataset name.

    Raises:
        DatasetError: the folder is not an MSD task (missing folders/dataset.json, bad name) or the id is taken.
    """
    task = Path(task_dir).expanduser().resolve()
    match = _TASK.match(task.name)
    if match is None:
        msg = f"{task} is not named like an MSD task folder (TaskNN_Name)."
        raise DatasetError(msg)
    missing = [n for n in (IMAGES_TR, LABELS_TR, DATASET_JSON) if not (task / n).exists()]
    if missing:
        msg = f"{task} is not an MSD task folder: {', '.join(missing)} missing."
        raise DatasetError(msg)
    msd = read_json(task / DATASET_JSON, what="MSD dataset.json")
    target = _prepare_target(workspace, int(dataset_id if dataset_id is not None else match["id"]), match["name"],
                             clean=clean)
    train = _images(task / IMAGES_TR)
    spec = convert_spec(msd, num_training=len(train))
    tmp = make_temp_dir(target.parent, prefix=f".{target.name}.")
    try:
        jobs = _jobs(task, tmp, train)
        _run(jobs, workers=workers)
        for label in _images(task / LABELS_TR):
            shutil.copy2(label, tmp / LABELS_TR / label.name)
        save_dataset_spec(spec, tmp / DATASET_JSON)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return target.name


def _jobs(task: Path, tmp: Path, train: list[Path]) -> list[tuple[Path, Path, str]]:
    jobs = []
    for sub, files in ((IMAGES_TR, train), (IMAGES_TS, _images(task / IMAGES_TS))):
        (tmp / sub).mkdir(parents=True, exist_ok=True)
        jobs += [(f, tmp / sub, f.name[: -len(_ENDING)]) for f in files]
    (tmp / LABELS_TR).mkdir(exist_ok=True)
    return jobs


def _run(jobs: list[tuple[Path, Path, str]], *, workers: int) -> None:
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            split_4d(*job)
        return
    with ProcessPoolExecutor(max_workers=workers, mp_context=get_context("spawn")) as pool:
        list(pool.map(split_4d, *zip(*jobs)))
