"""Exception hierarchy. Every error a user can cause is an ``AutounetError`` with an actionable message.

The CLI maps ``UsageError``/``ConfigError`` to exit code 2 and every other ``AutounetError`` to exit code 1.
"""

from __future__ import annotations

import errno


class AutounetError(Exception):
    """Base class of all errors raised deliberately by autounet."""

    exit_code: int = 1


class UsageError(AutounetError):
    """Bad command-line or API arguments."""

    exit_code = 2


class ConfigError(AutounetError):
    """An invalid configuration value, preset or artefact field."""

    exit_code = 2


class WorkspaceError(AutounetError):
    """A workspace root that cannot be used (a file, not writable, ...)."""


class DatasetError(AutounetError):
    """A raw dataset that is missing, malformed or inconsistent."""


class ImageIOError(AutounetError):
    """An image file that cannot be read or written."""


class SchemaError(AutounetError):
    """An artefact (plans, fingerprint, ...) that does not validate against its schema."""


class PlansError(SchemaError):
    """Plans that cannot be resolved (unknown configuration, inheritance cycle, ...)."""


class CheckpointError(AutounetError):
    """A checkpoint that is missing or does not match the plans."""


class ClusterError(AutounetError):
    """A cluster that cannot be used: unreachable scheduler, missing batch system, bad cluster configuration."""


_OS_ADVICE = {
    errno.ENOSPC: "free space on that disk or choose another --workspace / output folder, then run the command "
                  "again; finished work is kept",
    errno.EDQUOT: "free space in your quota or choose another --workspace / output folder, then run the command again",
    errno.EACCES: "fix the permissions of that path or choose another --workspace / output folder",
    errno.EPERM: "fix the permissions of that path or choose another --workspace / output folder",
    errno.EROFS: "the file system is read-only; choose another --workspace / output folder",
    errno.ENOENT: "check that the path exists and, for a dataset, that dataset.json lists existing files",
    errno.ELOOP: "a symbolic link points to itself or loops; remove or fix the link",
    errno.ENOTDIR: "a file stands where a folder is needed; give a folder",
    errno.EISDIR: "a folder stands where a file is needed; give a file",
    errno.EEXIST: "remove it or choose another name",
    errno.ENAMETOOLONG: "use a shorter name or path",
    errno.EIO: "the storage reported an input/output error; check the disk and run the command again",
    errno.EMFILE: "too many open files; raise the limit (ulimit -n) or use fewer workers",
}


def describe_os_error(exc: OSError) -> str:
    """One line for an ``OSError``: the file(s), what went wrong and what to do."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    files = " -> ".join(repr(str(f)) for f in (exc.filename, exc.filename2) if f is not None)
    advice = _OS_ADVICE.get(exc.errno or 0, "check the path and run the command again")
    where = f"{files}: " if files else ""
    return " ".join(f"{where}{reason} ({advice}).".split())
