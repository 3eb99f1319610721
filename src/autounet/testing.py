"""Synthetic labelled datasets for the demo, the tests and users' experiments (no download needed).

Each case is a 3D volume with two foreground structures of clearly different intensity: an ellipsoid (label 1)
and a curved tube (label 2), on a smoothly varying background with Gaussian noise, sampled on a configurable
(anisotropic) voxel grid. Structures are defined in millimetres, so the anisotropy is real: they span a few voxels
along the coarse axis and about a dozen in-plane. A small U-Net learns them in a few minutes on a CPU.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from autounet._atomic import make_temp_dir
from autounet.errors import DatasetError
from autounet.io import ImageGeometry, write_image, write_segmentation
from autounet.io.geometry import as_spacing
from autounet.schemas.dataset import DatasetSpec, save_dataset_spec
from autounet.workspace import DATASET_DIR_PATTERN, DATASET_JSON, Workspace, dataset_dir_name

#: per channel: (ellipsoid contrast, tube contrast) added to the background (in noise standard deviations x 4)
_CONTRASTS = ((1.0, 2.0), (2.0, 0.8), (0.5, 1.5), (1.5, 0.5))
SYNTHETIC_LABELS = {"background": 0, "ellipsoid": 1, "tube": 2}


@dataclass(frozen=True)
class SyntheticCase:
    """One synthetic case: float32 images ``(c, z, y, x)`` and a uint8 label map ``(z, y, x)``."""

    images: np.ndarray
    label: np.ndarray
    spacing: tuple[float, float, float]


def _grid_mm(shape: Sequence[int], spacing: Sequence[float]) -> list[np.ndarray]:
    return list(np.meshgrid(*[(np.arange(n) + 0.5) * s for n, s in zip(shape, spacing)], indexing="ij", sparse=True))


def _ellipsoid(grid: list[np.ndarray], extent: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    radii = rng.uniform(0.12, 0.2, 3) * extent.min() * np.array([1.2, 1.0, 0.9])
    centre = extent * rng.uniform(0.35, 0.65, 3)
    dist = sum(((g - c) / r) ** 2 for g, c, r in zip(grid, centre, radii))
    return dist <= 1.0


def _tube(grid: list[np.ndarray], extent: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A tube around a circular arc lying in a random plane through the volume."""
    centre = extent * rng.uniform(0.4, 0.6, 3)
    arc_radius = extent.min() * rng.uniform(0.25, 0.32)
    tube_radius = extent.min() * rng.uniform(0.05, 0.08)
    u = rng.normal(size=3)
    u /= np.linalg.norm(u)
    v = np.cross(u, rng.normal(size=3))
    v /= np.linalg.norm(v)
    n = np.cross(u, v)
    rel = [g - c for g, c in zip(grid, centre)]
    height = sum(r * k for r, k in zip(rel, n))
    pu, pv = sum(r * k for r, k in zip(rel, u)), sum(r * k for r, k in zip(rel, v))
    in_plane = np.sqrt(pu**2 + pv**2)
    angle = np.arctan2(pv, pu)
    on_arc = np.abs(angle) <= rng.uniform(0.5, 0.8) * np.pi
    return ((in_plane - arc_radius) ** 2 + height**2 <= tube_radius**2) & on_arc


def _background(grid: list[np.ndarray], extent: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A smooth intensity bias (low-frequency cosines)."""
    out = np.zeros(())  # broadcasts to the grid's shape
    for g, e in zip(grid, extent):
        out = out + 0.1 * np.cos(2 * np.pi * g / e * rng.uniform(0.3, 1.0) + rng.uniform(0, 2 * np.pi))
    return out


def synthetic_case(shape: Sequence[int] = (24, 64, 64), spacing: Sequence[float] = (3.0, 1.0, 1.0), *,
                   n_channels: int = 1, noise: float = 0.25, rng: np.random.Generator | None = None
                   ) -> SyntheticCase:
    """One synthetic case (see the module docstring)."""
    if not 1 <= n_channels <= len(_CONTRASTS):
        msg = f"n_channels must be 1..{len(_CONTRASTS)}, got {n_channels}"
        raise ValueError(msg)
    rng = rng or np.random.default_rng()
    shape, spacing_t = tuple(int(s) for s in shape), tuple(float(s) for s in spacing)
    extent = np.asarray(shape) * np.asarray(spacing_t)
    grid = _grid_mm(shape, spacing_t)
    label = np.zeros(shape, dtype=np.uint8)
    label[_tube(grid, extent, rng)] = 2
    label[_ellipsoid(grid, extent, rng)] = 1
    bias = np.broadcast_to(_background(grid, extent, rng), shape)
    images = np.empty((n_channels, *shape), dtype=np.float32)
    for c in range(n_channels):
        ell, tube = _CONTRASTS[c]
        signal = np.where(label == 1, ell, np.where(label == 2, tube, 0.0))
        images[c] = 100.0 + 40.0 * (signal + bias + rng.normal(0.0, noise, shape))
    return SyntheticCase(images=images, label=label, spacing=spacing_t)  # type: ignore[arg-type]


def make_synthetic_dataset(root: str | os.PathLike[str], *, n_cases: int = 12, shape: Sequence[int] = (24, 64, 64),
                           spacing: Sequence[float] = (3.0, 1.0, 1.0), n_channels: int = 1, seed: int = 0,
                           n_test: int = 0, noise: float = 0.25, file_ending: str = ".nii.gz") -> Path:
    """Write a complete raw dataset (``dataset.json``, ``imagesTr``, ``labelsTr``, optional ``imagesTs``) at ``root``.

    Args:
        root: the dataset folder to create, e.g. ``workspace.raw / "Dataset998_Synthetic"``.
        n_cases: training cases (``case_000`` ...); ``n_test`` more go to ``imagesTs`` (``test_000`` ...).
        shape, spacing: voxel grid and voxel size in ``(z, y, x)`` order.
        n_channels: input channels (1-4), each with its own contrast of the two structures.
        seed: the random seed; the same seed gives the same files.
        noise: Gaussian noise standard deviation relative to the ellipsoid's contrast.

    Returns:
        ``root``.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    geometry = ImageGeometry(spacing=as_spacing(spacing))
    for i in range(n_cases + n_test):
        case = synthetic_case(shape, spacing, n_channels=n_channels, noise=noise, rng=rng)
        train = i < n_cases
        name = f"case_{i:03d}" if train else f"test_{i - n_cases:03d}"
        folder = root / ("imagesTr" if train else "imagesTs")
        for c in range(n_channels):
            write_image(case.images[c], folder / f"{name}_{c:04d}{file_ending}", geometry)
        if train:
            write_segmentation(case.label, root / "labelsTr" / f"{name}{file_ending}", geometry)
    spec = DatasetSpec(channel_names={str(c): f"MRI{c}" if c else "MRI" for c in range(n_channels)},
                       labels=dict(SYNTHETIC_LABELS), num_training=n_cases, file_ending=file_ending,
                       extra={"name": root.name, "description": f"autounet synthetic dataset (seed {seed})"})
    save_dataset_spec(spec, root / DATASET_JSON)
    return root


# ---- the demo's dataset ------------------------------------------------------------------------------------------
SYNTHETIC_ID, SYNTHETIC_NAME, IMPORTED_ID = 998, "Synthetic", 999


def _swap_in(tmp: Path, target: Path) -> None:
    if target.exists():
        shutil.rmtree(target)
    os.replace(tmp, target)


def _label_values_of(labels: Sequence[Path]) -> dict[str, int]:
    """``{"background": 0, "label_1": 1, ...}`` from the values found in label files."""
    from autounet.io import read_segmentation

    values: set[int] = set()
    for path in labels:
        seg, _ = read_segmentation(path)
        values.update(int(v) for v in np.unique(seg))
    return {"background": 0, **{f"label_{v}": v for v in sorted(values - {0})}}


def prepare_demo_dataset(workspace: Workspace, source: str | os.PathLike[str] | None = None, *,
                         dataset_id: int | None = None, n_cases: int = 16, shape: Sequence[int] = (24, 64, 64),
                         spacing: Sequence[float] = (3.0, 1.0, 1.0), n_channels: int = 1, seed: int = 0,
                         clean: bool = False) -> tuple[str, str]:
    """Put the demo's dataset into ``workspace.raw`` and return ``(dataset name, what was done)``.

    Without ``source`` a synthetic dataset is generated (``Dataset998_Synthetic``). ``source`` may be a raw dataset
    folder (with dataset.json; copied, hard-linked where possible) or a folder with ``images/`` and ``labels/``
    (imported; label names ``label_N`` from the values found). An existing target is reused unless ``clean``.
    """
    from autounet.dataset.importer import _prepare_target, import_folders, pair_cases

    if source is None:
        name = dataset_dir_name(dataset_id if dataset_id is not None else SYNTHETIC_ID, SYNTHETIC_NAME)
        target = workspace.raw_dataset(name)
        if target.exists() and not clean:
            return name, "reusing"
        _prepare_target(workspace, int(name[7:10]), SYNTHETIC_NAME, clean=True)
        tmp = make_temp_dir(workspace.raw, prefix=f".{name}.")
        make_synthetic_dataset(tmp, n_cases=n_cases, shape=shape, spacing=spacing, n_channels=n_channels, seed=seed)
        _swap_in(tmp, target)
        return name, "generated"
    src = Path(source).expanduser().resolve()
    short = re.sub(r"[^A-Za-z0-9\-]", "", DATASET_DIR_PATTERN.sub(r"\2", src.name)) or "Imported"
    name = src.name if DATASET_DIR_PATTERN.match(src.name) else dataset_dir_name(
        dataset_id if dataset_id is not None else IMPORTED_ID, short)
    target = workspace.raw_dataset(name)
    if src == target.resolve() or (target.exists() and not clean):
        return name, "reusing"
    if (src / DATASET_JSON).is_file():
        tmp = make_temp_dir(workspace.raw, prefix=f".{name}.")
        shutil.copytree(src, tmp, dirs_exist_ok=True, copy_function=_link_or_copy)
        _swap_in(tmp, target)
        return name, "copied"
    if (src / "images").is_dir() and (src / "labels").is_dir():
        pairs, _ = pair_cases([src / "images"], src / "labels", n_channels=1)
        labels = _label_values_of([p.label for p in pairs.values()])
        result = import_folders(src / "images", src / "labels", workspace=workspace, dataset_id=int(name[7:10]),
                                name=name[11:], channels=("image",), label_values=labels, link=True, clean=True)
        return result.dataset_name, f"imported {len(result.cases)} cases ({len(result.unpaired)} unpaired skipped)"
    msg = f"{src} is neither a raw dataset (no dataset.json) nor a folder with images/ and labels/."
    raise DatasetError(msg)


def _link_or_copy(src: str, dst: str) -> None:
    try:
        os.link(src, dst)
    except OSError:
        shutil.copy2(src, dst)
