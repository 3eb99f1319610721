"""The preprocessed case store: one folder per configuration (``preprocessed/<ds>/<data_identifier>/``).

Per case:

* ``<case>.b2nd``: blosc2 NDArray, float32 ``(c, z, y, x)``;
* ``<case>_seg.b2nd``: blosc2 NDArray, int16 ``(1, z, y, x)`` (-1 outside the non-zero mask);
* ``<case>_locations.npz``: class locations (int64 arrays);
* ``<case>.json``: the :class:`~autounet.preprocessing.properties.CaseProperties` record, written **last**.

The JSON file is the commit marker: every file is written to a temporary name and renamed into place, the JSON
after the arrays, so a case is either complete (its JSON exists) or absent; an interrupted run leaves only
temporary files, which the next run deletes.

The record also lists each array file's size, modification time and BLAKE2b checksum (``files``) and the label
values the segmentation holds (``label_values``). :func:`check_case` compares the files with the record: a
missing file or another size is damage; another modification time (or ``full=True``) costs a checksum of the
file, which decides. ``preprocess`` redoes a damaged case; training refuses it, naming the case and the command
that repairs it. Chunk and block shapes follow the patch size (the reference's rule,
facts §4.5) so that reading a random training patch decompresses only the blocks it overlaps.
"""

from __future__ import annotations

import dataclasses
import errno
import hashlib
import math
import os
import shutil
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from autounet._atomic import atomic_path, is_abandoned, is_temporary, write_json_atomic
from autounet.errors import DatasetError, SchemaError, WorkspaceError
from autounet.preprocessing.properties import (
    CaseProperties,
    load_properties,
    save_locations,
)
from autounet.workspace import CASE_DATA_SUFFIX, CASE_LOCATIONS_SUFFIX, CASE_PROPERTIES_SUFFIX, CASE_SEG_SUFFIX

DATA_SUFFIX = CASE_DATA_SUFFIX
SEG_SUFFIX = CASE_SEG_SUFFIX
LOCATIONS_SUFFIX = CASE_LOCATIONS_SUFFIX
PROPERTIES_SUFFIX = CASE_PROPERTIES_SUFFIX

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
    try:
        with atomic_path(target, suffix=".b2nd") as tmp:
            tmp.unlink(missing_ok=True)
            blosc2.asarray(np.ascontiguousarray(array), urlpath=str(tmp), mode="w", chunks=chunks, blocks=blocks,
                           cparams=compression.cparams())
    except RuntimeError as exc:  # blosc2 reports a failed write (disk full, ...) as a RuntimeError
        raise _write_error(target, exc, needed=array.nbytes) from exc


def _write_error(target: Path, exc: BaseException, *, needed: int = 0) -> WorkspaceError:
    """One line for a store file that could not be written (the temporary file is already removed)."""
    try:
        free = shutil.disk_usage(target.parent).free
    except OSError:
        free = -1
    full = getattr(exc, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or 0 <= free < max(needed, 1 << 20)
    reason = f"no space left on the device ({free} bytes free)" if full else f"{type(exc).__name__}: {exc}"
    return WorkspaceError(f"Cannot write {target}: {reason}; free space (or move the workspace), then run the same "
                          "command again (finished cases are kept).")


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
    seg = seg.astype(np.int16, copy=False)
    _write_b2nd(files["data"], data.astype(np.float32, copy=False), patch_size, DATA_COMPRESSION)
    _write_b2nd(files["seg"], seg, patch_size, SEG_COMPRESSION)
    try:
        save_locations(files["locations"], properties)
        record = dataclasses.replace(properties, label_values=label_values(seg),
                                     files={k: file_record(files[k]) for k in INTEGRITY_FILES})
        write_json_atomic(files["properties"], record.to_json_dict())
    except OSError as exc:
        if exc.errno not in (errno.ENOSPC, errno.EDQUOT):
            raise
        raise _write_error(files["properties"], exc) from exc


# ---- integrity ----------------------------------------------------------------------------------------------------
#: the files of a case whose size and checksum the record holds
INTEGRITY_FILES = ("data", "seg", "locations")
_READ_CHUNK = 1 << 20


def label_values(seg: np.ndarray) -> tuple[int, ...]:
    """The values of an int16 segmentation, -1 (outside the non-zero mask) excluded (one counting pass)."""
    flat = np.asarray(seg).ravel()
    if flat.size == 0:
        return ()
    low = int(flat.min())
    counts = np.bincount(flat.astype(np.int64) - low)
    return tuple(int(v) + low for v in np.flatnonzero(counts) if int(v) + low != -1)


def checksum(path: str | os.PathLike[str]) -> str:
    """BLAKE2b (16-byte digest) of a file's bytes, read in 1 MiB blocks."""
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while block := f.read(_READ_CHUNK):
            h.update(block)
    return h.hexdigest()


def file_record(path: Path) -> dict[str, Any]:
    """``{"size", "mtime_ns", "blake2b"}`` of a stored file."""
    st = path.stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "blake2b": checksum(path)}


def check_case(folder: str | os.PathLike[str], case: str, records: Any, *, full: bool = False) -> str | None:
    """What is wrong with a stored case's files compared with its record's ``files``, or ``None`` if intact.

    Size and modification time are compared always (a ``stat`` per file); the checksum is computed only when the
    modification time differs from the record's (the file was rewritten, or copied without its times) or when
    ``full`` is set (to catch silent corruption that keeps size and time, at the cost of reading every file).
    A record without ``files`` (written by an older version) cannot be checked and counts as damaged.
    """
    paths = case_files(Path(folder), case)
    if not records:
        return "its record has no file sizes and checksums (written by an older version)"
    for kind in INTEGRITY_FILES:
        path, rec = paths[kind], records.get(kind)
        if rec is None:
            return f"its record has no checksum of {path.name}"
        try:
            st = path.stat()
        except OSError:
            return f"{path.name} is missing"
        if st.st_size != rec["size"]:
            return f"{path.name} has {st.st_size} bytes where {rec['size']} were written (truncated or replaced)"
        if (full or st.st_mtime_ns != rec["mtime_ns"]) and checksum(path) != rec["blake2b"]:
            return f"{path.name} does not match its recorded checksum (corrupted)"
    return None


def repair_command(folder: Path, configuration: str | None = None) -> str:
    """The command that redoes a store folder's damaged cases (``autounet preprocess DATASET -c CONFIG``)."""
    config = f" -c {configuration}" if configuration else ""
    return f"autounet preprocess {folder.parent.name}{config}"


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

    def __init__(self, folder: str | os.PathLike[str], *, repair: str | None = None) -> None:
        self.folder = Path(folder)
        if not self.folder.is_dir():
            msg = f"No preprocessed data at {self.folder}. Run `autounet preprocess` for this configuration first."
            raise DatasetError(msg)
        self._properties: dict[str, CaseProperties] = {}
        self._repair = repair

    def repair_hint(self, case: str | None = None) -> str:
        """``run `autounet preprocess ...` to redo it`` for error messages about a damaged case."""
        if self._repair:
            return f"run `{self._repair}` to redo it"
        config = None
        if case is not None and case in self._properties:
            config = self._properties[case].configuration
        return f"run `{repair_command(self.folder, config)}` to redo it"

    def check(self, case: str, *, full: bool = False) -> None:
        """Raise ``DatasetError`` naming the case, the damage and the repair command if its files do not match
        its record (see :func:`check_case`); records of older versions (no checksums) are accepted."""
        props = self.properties(case)
        if props.files is None:
            return
        problem = check_case(self.folder, case, props.files, full=full)
        if problem is not None:
            msg = f"Preprocessed case {case!r} in {self.folder} is damaged: {problem}; {self.repair_hint(case)}."
            raise DatasetError(msg)

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
            try:
                self._properties[case] = load_properties(files["properties"], files["locations"])
            except SchemaError as exc:
                if files["locations"].is_file():
                    raise  # e.g. a record of a newer version: not damage
                msg = (f"Preprocessed case {case!r} in {self.folder} is damaged: {files['locations'].name} is "
                       f"missing; {self.repair_hint()}.")
                raise DatasetError(msg) from exc
            except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:  # a damaged .npz
                msg = (f"Cannot read the record of preprocessed case {case!r} in {self.folder}: "
                       f"{type(exc).__name__}: {exc}; {self.repair_hint()}.")
                raise DatasetError(msg) from exc
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
            msg = (f"Cannot open the arrays of preprocessed case {case!r} in {self.folder}: {exc}; "
                   f"{self.repair_hint(case)}.")
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
