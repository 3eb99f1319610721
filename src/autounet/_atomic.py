"""Atomic file writes (a temporary file in the same folder, renamed over the target) and atomic claims.

Temporary names carry their owner (``.<target>.~<host>~<pid>~<random>.tmp<suffix>``), so that a command cleaning
up after an interrupted run removes only temporaries whose writer is gone: a process of this host that no longer
exists, or (other hosts sharing the storage) a file untouched for :data:`ABANDONED_AFTER_S` (untagged
temporaries of older versions count as abandoned). Two commands on the
same dataset from different machines therefore never delete each other's files in flight.

A claim (:func:`try_claim`) is a small file created with ``O_EXCL`` that says which host/pid works on something
(e.g. one case); another process skips or waits for claimed work and takes a claim over once its owner is gone.

Files and folders made here get the modes a plain ``open``/``mkdir`` would give under the process umask (0644 /
0755 under umask 022), not ``tempfile``'s private 0600 / 0700, so that other users of a shared machine can read
checkpoints, plans and reports when the umask allows it.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

#: a temporary or claim of another host (or without an owner tag) untouched for this long is abandoned
ABANDONED_AFTER_S = 3600.0
_OWNER = re.compile(r"~(?P<host>[A-Za-z0-9_.-]*)~(?P<pid>\d+)~")


def _host() -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", socket.gethostname())[:40] or "host"


def owner_tag() -> str:
    """``~<host>~<pid>~``: the part of temporary names that tells which process writes them."""
    return f"~{_host()}~{os.getpid()}~"


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # e.g. EPERM: it exists (another user's process)
        return True
    return True


def is_abandoned(path: str | os.PathLike[str], *, host: str | None = None, pid: int | None = None,
                 max_age_s: float = ABANDONED_AFTER_S) -> bool:
    """Whether a temporary/claim file's writer is gone (see the module docstring); missing files count as gone.

    ``host``/``pid`` give the owner when it is not in the name (claims record it inside).
    """
    path = Path(path)
    match = _OWNER.search(path.name)
    if host is None:
        if match is None:  # written by a version without owner tags: nobody can still be writing it
            return True
        host, pid = match["host"], int(match["pid"])
    try:
        age = time.time() - path.stat().st_mtime
    except FileNotFoundError:
        return True
    if host == _host() and pid is not None:
        return not _pid_alive(pid) or age > 24 * ABANDONED_AFTER_S
    return age > max_age_s


def is_temporary(path: str | os.PathLike[str]) -> bool:
    """Whether ``path`` is a temporary of :func:`atomic_path` (``.<name>.<...>.tmp<suffix>``)."""
    name = Path(path).name
    return name.startswith(".") and ".tmp" in name


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
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.{owner_tag()}", suffix=f".tmp{suffix}",
                                    dir=target.parent)
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


# ---- claims ---------------------------------------------------------------------------------------------------
class Claim:
    """A held claim; :meth:`release` (or leaving the ``with`` block) removes it."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def release(self) -> None:
        """Give the claim up (only if it is still ours)."""
        if _claim_owner(self.path) == (_host(), os.getpid()):
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> Claim:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def _claim_owner(path: Path) -> tuple[str, int] | None:
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        return str(record["host"]), int(record["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def claim_is_stale(path: str | os.PathLike[str], *, max_age_s: float = ABANDONED_AFTER_S) -> bool:
    """Whether a claim file is absent or its owner is gone (dead local process, or too old elsewhere)."""
    path = Path(path)
    owner = _claim_owner(path)
    if owner is None:  # unreadable: being written right now, or garbage; judged by its age
        return is_abandoned(path, host="", max_age_s=min(max_age_s, 60.0))
    return is_abandoned(path, host=owner[0], pid=owner[1], max_age_s=max_age_s)


def try_claim(path: str | os.PathLike[str], *, max_age_s: float = ABANDONED_AFTER_S) -> Claim | None:
    """Create the claim file ``path`` exclusively; ``None`` when a live owner holds it.

    A stale claim (:func:`claim_is_stale`) is taken over. Two processes taking over the same stale claim at the
    same instant could both proceed; the work guarded by claims must therefore itself be atomic (it only saves
    duplicate work).
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    record = json.dumps({"host": _host(), "pid": os.getpid(), "time": time.time()}).encode("utf-8")
    for _ in range(3):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            if not claim_is_stale(path, max_age_s=max_age_s):
                return None
            path.unlink(missing_ok=True)  # take over: the owner is gone
            continue
        try:
            os.write(fd, record)
        finally:
            os.close(fd)
        return Claim(path)
    return None
