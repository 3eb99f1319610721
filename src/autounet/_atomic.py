"""Atomic file writes: write to a temporary file in the same folder, then rename over the target.

Files and folders made here get the modes a plain ``open``/``mkdir`` would give under the process umask (0644 /
0755 under umask 022), not ``tempfile``'s private 0600 / 0700, so that other users of a shared machine can read
checkpoints, plans and reports when the umask allows it.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def current_umask() -> int:
    """The process umask, read without changing it (Linux ``/proc``; elsewhere set and restored at once)."""
    try:
        with open("/proc/self/status", encoding="utf-8") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def make_temp_dir(parent: str | os.PathLike[str], *, prefix: str, suffix: str = ".tmp") -> Path:
    """A fresh hidden folder in ``parent`` (``tempfile.mkdtemp``) with the umask's folder mode, not 0700."""
    path = Path(tempfile.mkdtemp(prefix=prefix, suffix=suffix, dir=parent))
    os.chmod(path, 0o777 & ~current_umask())
    return path


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike[str], *, suffix: str | None = None) -> Iterator[Path]:
    """Yield a temporary path next to ``target``; on success it is renamed to ``target``, on error removed.

    ``suffix`` (default: the target's full suffix, e.g. ``.nii.gz``) lets writers that infer the format
    from the file name work on the temporary path.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if suffix is None:
        suffix = "".join(target.suffixes)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f".tmp{suffix}", dir=target.parent)
    try:
        os.fchmod(fd, 0o666 & ~current_umask())  # writers that reopen the path keep this mode
    finally:
        os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_bytes_atomic(target: str | os.PathLike[str], data: bytes) -> None:
    """Write ``data`` to ``target`` atomically."""
    with atomic_path(target) as tmp:
        tmp.write_bytes(data)


def write_json_atomic(target: str | os.PathLike[str], obj: Any, *, indent: int = 2) -> None:
    """Write ``obj`` as JSON to ``target`` atomically (keys keep their insertion order)."""
    text = json.dumps(obj, indent=indent, allow_nan=True) + "\n"
    write_bytes_atomic(target, text.encode("utf-8"))
