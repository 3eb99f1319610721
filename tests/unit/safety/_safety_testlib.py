"""Helpers of the safety tests: the tiny dataset's name, file-tree hashes and the one-line-error check."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

DATASET = "Dataset001_Tiny"


def tree(root: Path, *, exclude: Path | None = None) -> dict[str, str]:
    """``relative path -> sha256`` of every file under ``root`` (links not followed), except under ``exclude``."""
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        if exclude is not None and Path(dirpath).resolve().is_relative_to(exclude.resolve()):
            dirnames[:] = []
            continue
        for name in filenames:
            path = Path(dirpath) / name
            out[str(path.relative_to(root))] = "link" if path.is_symlink() else \
                hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def assert_one_line_error(code: int, err: str, *, expect: tuple[int, ...] = (1, 2), contains: str = "") -> str:
    """The command failed with an expected exit code and exactly one error line without a traceback."""
    lines = [ln for ln in err.splitlines() if ln.strip()]
    errors = [ln for ln in lines if ": error: " in ln]
    assert code in expect, err
    assert "Traceback" not in err, err
    assert len(errors) == 1, err
    assert contains.lower() in errors[0].lower(), errors[0]
    return errors[0]
