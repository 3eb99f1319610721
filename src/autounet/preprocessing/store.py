"""The preprocessed case store: one folder per configuration (``preprocessed/<ds>/<data_identifier>/``).

Per case:

* ``<case>.b2nd``: blosc2 NDArray, float32 ``(c, z, y, x)``;
* ``<case>_seg.b2nd``: blosc2 NDArray, int16 ``(1, z, y, x)`` (-1 outside the non-zero mask);
* ``<case>_locations.npz``: class locations (int64 arrays);
* ``<case>.json``: the :class:`~autounet.preprocessing.properties.CaseProperties` record, written **last**.

The JSON file is the commit marker: every file is written to a temporary name and renamed into place, the JSON
after the arrays, so a case is either complete (its JSON exists) or absent; an interrupted run leaves only
temporary files, which the next run deletes. Chunk and block shapes follow the patch size (the reference's rule,
facts §4.5) so that reading a random training patch decompresses only the blocks it overlaps.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from autounet._atomic import atomic_path, is_abandoned, is_temporary
from autounet.errors import DatasetError
from autounet.preprocessing.properties import CaseProperties, load_properties, save_properties

DATA_SUFFIX = ".b2nd"
SEG_SUFFIX = "_seg.b2nd"
LOCATIONS_SUFFIX = "_locations.npz"
PROPERTIES_SUFFIX = ".json"

MAX_BLOCK_BYTES = 128 * 1024
MAX_CHUNK_BYTES = 6 * 1024 ** 2
MAX_CHUNK_TO_PATCH = 1.5


# ---- chunk and block shapes -------------------------------------------------------------------------------------
def _ceil_pow2(n: int) -> int:
    return 1 if n <= 1 else 1 << (n - 1).bit_length()


def _pow2_below(n: int) -> int:
    return 1 if n <= 1 else 1 << ((n - 1).bit_length() - 1)


def chunk_and_block_shapes(shape: Sequence[int], patch_size: Sequence[int], itemsize: int, *,
                           max_block_bytes: int = MAX_BLOCK_BYTES, max_chunk_bytes: int = MAX_CHUNK_BYTES,
                           max_chunk_to_patch: float = MAX_CHUNK_TO_PATCH) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """``(blocks, chunks)`` for a ``(c, z, y, x)`` array read in patches of ``patch_size`` (2 or 3 axes).

    Blocks start at each patch edge rounded up to a power of two (capped by the image) and the axis most
    over-represented relative to its target extent (``min(image, floor(1.5 * patch))``) is halved until a block
    holds at most ``max_block_bytes``. Chunks then grow by one block along the least covered axis (ties: larger
    image axis first) while every axis stays within its target and the chunk within ``max_chunk_bytes``. The
    channel axis is always 1; a 2D patch is ``(1, py, px)`` and its singleton axis never grows.
    """
    if len(shape) != 4:
        msg = f"expected a (c, z, y, x) shape, got {tuple(shape)}"
        raise ValueError(msg)
    is_2d = len(patch_size) == 2
    patch = (1, *patch_size) if is_2d else tuple(patch_size)
    image = tuple(int(s) for s in shape[1:])
    target = tuple(max(1, min(image[a], math.floor(max_chunk_to_patch * patch[a]))) for a in range(3))

    def nbytes(s: Sequence[int]) -> int:
        return math.prod(s) * itemsize

    block = [1, *(min(_ceil_pow2(int(p)), i) for p, i in zip(patch, image))]
    while nbytes(block) > min(max_block_bytes, max_chunk_bytes):
        axes = [a for a in range(3) if block[a + 1] > 1]
        if not axes:
            break
        worst = max(axes, key=lambda a: (block[a + 1] / target[a], a))
        block[worst + 1] = _pow2_below(block[worst + 1])

    chunk = list(block)
    while True:
        candidates = []
        for a in range(3):
            if (is_2d and a == 0) or patch[a] == 1 or chunk[a + 1] >= min(image[a], target[a]):
                continue
            grown = list(chunk)
            grown[a + 1] = min(chunk[a + 1] + block[a + 1], image[a], target[a])
            if nbytes(grown) > max_chunk_bytes:
                continue
            candidates.append(((chunk[a + 1] / target[a], -image[a], a, -nbytes(grown)), grown))
        if not candidates:
            break
        chunk = min(candidates, key=lambda item: item[0])[1]
    return tuple(block), tuple(chunk)


# ---- writing ----------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Compression:
    """blosc2 settings of one array kind."""

    codec: str
    clevel: int
    shuffle: bool

    def cparams(self) -> dict[str, Any]:
        import blosc2

        filters = [blosc2.Filter.SHUFFLE if self.shuffle else blosc2.Filter.NOFILTER]
        return {"codec": getattr(blosc2.Codec, self.codec), "clevel": self.clevel, "filters": filters,
                "nthreads": 1}


#: images: LZ4HC output decompresses ~10 % faster than LZ4's and is ~25 % smaller (written once, read for every
#: training patch); labels: ZSTD-1 compresses 2-3x better than LZ4HC at similar read speed
DATA_COMPRESSION = Compression("LZ4HC", 5, True)
SEG_COMPRESSION = Compression("ZSTD", 1, True)


def _write_b2nd(target: Path, array: np.ndarray, patch_size: Sequence[int], compression: Compression) -> None:
    import blosc2

    blocks, chunks = chunk_and_block_shapes(array.shape, patch_size, array.itemsize)
    with atomic_path(target, suffix=".b2nd") as tmp:
        tmp.unlink(missing_ok=True)
        blosc2.asarray(np.ascontiguousarray(array), urlpath=str(tmp), mode="w", chunks=chunks, blocks=blocks,
                       cparams=compression.cparams())


class CaseArrays(NamedTuple):
    """The lazy arrays of one case (slicing reads only the chunks/blocks needed)."""

    data: Any
    seg: Any


def case_files(folder: Path, case: str) -> dict[str, Path]:
    """Paths of a case's files in a store folder."""
    return {"data": folder / f"{case}{DATA_SUFFIX}", "seg": folder / f"{case}{SEG_SUFFIX}",
            "locations": folder / f"{case}{LOCATIONS_SUFFIX}", "properties": folder / f"{case}{PROPERTIES_SUFFIX}"}


def write_case(folder: str | os.PathLike[str], data: np.ndarray, seg: np.ndarray, properties: CaseProperties, *,
               patch_size: Sequence[int]) -> None:
    """Write one case atomically (arrays first, the JSON record last)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    files = case_files(folder, properties.case_id)
    files["properties"].unlink(missing_ok=True)  # an overwritten case is incomplete until the new record lands
    _write_b2nd(files["data"], data.astype(np.float32, copy=False), patch_size, DATA_COMPRESSION)
    _write_b2nd(files["seg"], seg.astype(np.int16, copy=False), patch_size, SEG_COMPRESSION)
    save_properties(files["properties"], files["locations"], properties)


def remove_temporary_files(folder: str | os.PathLike[str]) -> int:
    """Delete leftovers of interrupted writes (``.<name>.<owner>.<random>.tmp...``); returns how many were removed.

    Temporaries of a live writer (another command on the same dataset, maybe on another machine) are kept.
    """
    folder = Path(folder)
    if not folder.is_dir():
        return 0
    removed = 0
    for path in folder.iterdir():
        if is_temporary(path) and path.is_file() and is_abandoned(path):
            path.unlink(missing_ok=True)
            removed += 1
    return removed


# ---- reading ----------------------------------------------------------------------------------------------------
class CaseStore:
    """Read access to the preprocessed cases of one configuration folder.

    Example:
        >>> store = CaseStore(workspace.preprocessed_data("Dataset004_Hippocampus", "nnUNetPlans_3d_fullres"))
        >>> props = store.properties("hippocampus_001")            # doctest: +SKIP
        >>> patch = store.read_patch("hippocampus_001", (slice(0, 40), slice(0, 56), slice(0, 40)))  # +SKIP
    """

    def __init__(self, folder: str | os.PathLike[str]) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            msg = f"No preprocessed data at {self.folder}. Run `autounet preprocess` for this configuration first."
            raise DatasetError(msg)
        self._properties: dict[str, CaseProperties] = {}

    def case_ids(self) -> list[str]:
        """Identifiers of the complete cases (those whose JSON record exists), sorted."""
        return sorted(p.name[: -len(PROPERTIES_SUFFIX)] for p in self.folder.glob(f"*{PROPERTIES_SUFFIX}")
                      if not p.name.startswith("."))

    def __contains__(self, case: object) -> bool:
        return isinstance(case, str) and case_files(self.folder, case)["properties"].is_file()

    def __iter__(self) -> Iterator[str]:
        return iter(self.case_ids())

    def __len__(self) -> int:
        return len(self.case_ids())

    def _files(self, case: str) -> dict[str, Path]:
        files = case_files(self.folder, case)
        if not files["properties"].is_file():
            msg = f"Case {case!r} is not in the preprocessed store {self.folder} (or was not completed)."
            raise DatasetError(msg)
        return files

    def properties(self, case: str) -> CaseProperties:
        """The case's properties record (cached after the first read)."""
        if case not in self._properties:
            files = self._files(case)
            self._properties[case] = load_properties(files["properties"], files["locations"])
        return self._properties[case]

    def open(self, case: str) -> CaseArrays:
        """Lazy ``(data, seg)`` arrays, memory-mapped; slicing decompresses only the blocks it touches."""
        import blosc2

        files = self._files(case)
        kwargs: dict[str, Any] = {"mode": "r", "dparams": {"nthreads": 1}}
        if os.name != "nt":
            kwargs["mmap_mode"] = "r"
        try:
            return CaseArrays(blosc2.open(str(files["data"]), **kwargs), blosc2.open(str(files["seg"]), **kwargs))
        except Exception as exc:  # noqa: BLE001 - any blosc2 failure means a damaged store
            msg = f"Cannot open the arrays of case {case!r} in {self.folder}: {exc}. Re-run with --clean."
            raise DatasetError(msg) from exc

    def read_patch(self, case: str, slices: Sequence[slice]) -> tuple[np.ndarray, np.ndarray]:
        """``(data, seg)`` numpy arrays of the spatial ``slices`` (all channels); reads only what is needed."""
        arrays = self.open(case)
        index = (slice(None), *slices)
        return np.asarray(arrays.data[index]), np.asarray(arrays.seg[index])

    def load(self, case: str) -> tuple[np.ndarray, np.ndarray]:
        """The whole case as numpy arrays."""
        arrays = self.open(case)
        return np.asarray(arrays.data[...]), np.asarray(arrays.seg[...])
