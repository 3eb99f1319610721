"""Atomic writes leave either the old file or the new one, never a partial file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from autounet._atomic import atomic_path, write_json_atomic


def test_write_json_atomic(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "a.json"
    write_json_atomic(target, {"a": 1})
    assert json.loads(target.read_text(encoding="utf-8")) == {"a": 1}
    assert [p.name for p in target.parent.iterdir()] == ["a.json"]


def test_failure_keeps_old_content_and_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "x.nii.gz"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_path(target) as tmp:
        assert tmp.name.endswith(".nii.gz")
        tmp.write_text("partial")
        raise RuntimeError("boom")
    assert target.read_text(encoding="utf-8") == "old"
    assert [p.name for p in tmp_path.iterdir()] == ["x.nii.gz"]
