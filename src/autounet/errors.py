"""Exception hierarchy. Every error a user can cause is an ``AutounetError`` with an actionable message.

The CLI maps ``UsageError``/``ConfigError`` to exit code 2 and every other ``AutounetError`` to exit code 1.
"""

from __future__ import annotations


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
