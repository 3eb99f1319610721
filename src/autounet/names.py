"""Containment: names that become parts of paths, and paths that must stay inside a folder.

Every name that autounet turns into a file or folder name (case ids from file names and from a ``dataset``
listing, dataset, plans, trainer and configuration names, fold names, output formats) passes :func:`check_name`:
no path separator, not ``.`` or ``..``, not absolute, no control characters, at most 200 characters. Paths read
from untrusted files (a ``dataset`` listing) pass :func:`check_inside`. The workspace's path builders
(``autounet.workspace``) call these, so a path a command writes always lies inside its workspace or the output
folder it was given.
"""

from __future__ import annotations

import os
from pathlib import Path

from autounet.errors import AutounetError, UsageError

MAX_NAME_LENGTH = 200
_SEPARATORS = ("/", "\\")


def name_problem(name: object) -> str | None:
    """Why ``name`` cannot be one file or folder name, or ``None`` when it can."""
    if not isinstance(name, str):
        return f"is a {type(name).__name__}, not a string"
    if not name:
        return "is empty"
    if name in (".", ".."):
        return f"is {name!r}, which names a folder, not a file"
    if any(sep in name for sep in _SEPARATORS):
        return "contains a path separator ('/' or '\\')"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in name):
        return "contains a control character"
    if os.path.isabs(name) or (len(name) > 1 and name[1] == ":"):
        return "is an absolute path"
    if len(name) > MAX_NAME_LENGTH:
        return f"is longer than {MAX_NAME_LENGTH} characters"
    return None


def check_name(name: object, *, what: str, where: str | None = None,
               error: type[AutounetError] = UsageError) -> str:
    """Return ``name`` when it is a safe single path component, else raise ``error`` naming it and ``what``.

    Args:
        name: the value to check.
        what: what the value is, for the message (``"trainer name"``, ``"case id"``).
        where: the file or option it came from, put in front of the message.
        error: the exception class (``UsageError`` for options, ``DatasetError``/``SchemaError`` for files).
    """
    problem = name_problem(name)
    if problem is not None:
        prefix = f"{where}: " if where else ""
        shown = repr(name) if len(repr(name)) <= 80 else repr(name)[:77] + "..."
        msg = (f"{prefix}{what} {shown} {problem}; it must be a plain name (no '/', '\\', '..', control "
               "characters or absolute paths).")
        raise error(msg)
    return name  # type: ignore[return-value]


def check_file_ending(ending: object, *, what: str = "file ending", where: str | None = None,
                      error: type[AutounetError] = UsageError) -> str:
    """A file ending such as ``.nii.gz``: starts with ``.`` and is a safe name."""
    check_name(ending, what=what, where=where, error=error)
    if not str(ending).startswith(".") or str(ending) == ".":
        prefix = f"{where}: " if where else ""
        msg = f"{prefix}{what} {ending!r} must start with '.' and name a format, e.g. '.nii.gz'."
        raise error(msg)
    return str(ending)


def is_inside(path: str | os.PathLike[str], root: str | os.PathLike[str]) -> bool:
    """Whether ``path`` resolves (symbolic links and ``..`` followed) to ``root`` or somewhere below it."""
    # os.path.realpath, unlike Path.resolve on Python 3.11, does not raise on a symbolic link loop
    return Path(os.path.realpath(path)).is_relative_to(Path(os.path.realpath(root)))


def check_inside(path: str | os.PathLike[str], root: str | os.PathLike[str], *, what: str,
                 error: type[AutounetError] = UsageError, hint: str = "") -> Path:
    """Return ``path`` when it resolves inside ``root``, else raise ``error`` naming both."""
    if not is_inside(path, root):
        msg = f"{what} {os.fspath(path)!r} lies outside {os.fspath(root)}.{(' ' + hint) if hint else ''}"
        raise error(msg)
    return Path(path)
