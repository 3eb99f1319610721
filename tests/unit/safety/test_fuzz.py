"""Property-based fuzzing (hypothesis) of dataset.json contents and file names through the CLI.

For every generated input: ``verify`` and ``plan`` never show a traceback; a failing command prints exactly one
error line; nothing is written outside the workspace and the raw data stay byte-identical. Inputs that are hostile
by construction (escaping case ids or paths, broken endings, non-JSON, control characters, link loops) must fail
with exit code 1 or 2. A few examples run by default; the ``slow`` tests run many more.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import pytest
from _safety_testlib import DATASET, tree
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from autounet.cli import main
from autounet.testing import make_synthetic_dataset

FAST = settings(max_examples=6, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
DEEP = settings(max_examples=120, deadline=None, database=None,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])

UNSAFE_KEYS = ["../../x", "/tmp/x", "..", ".", "", "a/b", "a\\b", "x\x01y", "../" * 6 + "escaped"]
UNSAFE_PATHS = ["../../../../x_0000.nii.gz", "/etc/hostname", "../../../escaped.nii.gz", "imagesTr/../../../x"]
PATHS = st.sampled_from(["imagesTr/case_000_0000.nii.gz", "labelsTr/case_000.nii.gz", "imagesTr", "missing.nii.gz",
                         *UNSAFE_PATHS]) | st.text(max_size=12)
KEYS = st.sampled_from(["case_000", "case_001", *UNSAFE_KEYS]) | st.text(max_size=10)
JSON = st.recursive(st.none() | st.booleans() | st.integers(-3, 300) | st.floats(allow_nan=True) |
                    st.text(max_size=8), lambda inner: st.lists(inner, max_size=3) |
                    st.dictionaries(st.text(max_size=6), inner, max_size=3), max_leaves=8)
LISTING = st.dictionaries(KEYS, st.fixed_dictionaries({"images": st.lists(PATHS, max_size=2)},
                                                      optional={"label": PATHS | st.none()}), max_size=3)
SPEC_KEYS = ("channel_names", "labels", "numTraining", "file_ending", "dataset", "regions_class_order",
             "overwrite_image_reader_writer", "modality")
NAME_CHARS = st.characters(blacklist_characters="/\x00", blacklist_categories=("Cs",))


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A valid workspace with 3 tiny cases, copied for every example."""
    ws = tmp_path_factory.mktemp("fuzz") / "ws"
    make_synthetic_dataset(ws / "raw" / DATASET, n_cases=3, shape=(4, 8, 8), spacing=(1.0, 1.0, 1.0))
    return ws


def _run(*args: Any) -> tuple[int, str, str]:
    import contextlib
    import io

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    return code, out.getvalue(), err.getvalue()


def _check(template: Path, mutate: Any, *, must_fail: bool) -> None:
    """Copy the template, apply ``mutate(raw_dataset_folder)``, run verify and plan, check the invariants."""
    with tempfile.TemporaryDirectory() as tmp:
        box = Path(tmp) / "a" / "b"
        ws = box / "ws"
        shutil.copytree(template, ws, symlinks=True)
        root = ws / "raw" / DATASET
        if mutate(root) is False:
            return  # the file system refused the generated name
        raw, outside = tree(ws / "raw"), tree(Path(tmp), exclude=ws)
        results = {"verify": _run("verify", DATASET, "--workspace", ws, "--workers", "1"),
                   "plan": _run("plan", DATASET, "--workspace", ws, "--quiet", "-j", "1", "-c", "2d")}
        for command, (code, out, err) in results.items():
            assert "Traceback" not in out + err, (command, err)
            assert code in ((1, 2) if must_fail else (0, 1, 2)), (command, code, out, err)
            if code != 0 and command == "plan":
                errors = [ln for ln in err.splitlines() if ": error: " in ln]
                assert len(errors) == 1 and len(errors[0]) < 2000, err
        assert tree(ws / "raw") == raw, "raw data changed"
        assert tree(Path(tmp), exclude=ws) == outside, "written outside the workspace"
        if results["plan"][0] != 0:
            assert not [p for p in (ws / "preprocessed").rglob("*") if p.is_dir()], "case folders after a failure"


def _spec(root: Path) -> dict[str, Any]:
    return json.loads((root / "dataset.json").read_text(encoding="utf-8"))


def _write_spec(root: Path, spec: Any) -> None:
    (root / "dataset.json").write_text(json.dumps(spec), encoding="utf-8")


@st.composite
def spec_mutations(draw: st.DrawFn) -> list[tuple[str, Any]]:
    """1-3 (key, value) replacements of dataset.json keys (``None`` value with key ``-k``: delete ``k``)."""
    out = []
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from(SPEC_KEYS))
        value = draw(LISTING if key == "dataset" and draw(st.booleans()) else JSON)
        out.append((f"-{key}" if draw(st.integers(0, 5)) == 0 else key, value))
    return out


def _apply(mutations: list[tuple[str, Any]]) -> Any:
    def mutate(root: Path) -> None:
        spec = _spec(root)
        for key, value in mutations:
            if key.startswith("-"):
                spec.pop(key[1:], None)
            else:
                spec[key] = value
        _write_spec(root, spec)

    return mutate


@st.composite
def hostile_spec(draw: st.DrawFn) -> Any:
    """A dataset.json that must be refused: an unsafe case id or listed path, a broken ending, or not JSON."""
    kind = draw(st.sampled_from(["key", "path", "ending", "bytes"]))
    if kind == "bytes":
        data = draw(st.binary(max_size=40).filter(lambda b: not _is_json_object(b)))
        return lambda root: (root / "dataset.json").write_bytes(data)
    if kind == "ending":
        ending = draw(st.sampled_from(["nii.gz", "/../../x.nii.gz", ".", "./x", ".a/b", "", ".nii\x01"]))
        return _apply([("file_ending", ending)])
    listing = {f"case_{i:03d}": {"images": [f"imagesTr/case_{i:03d}_0000.nii.gz"],
                                 "label": f"labelsTr/case_{i:03d}.nii.gz"} for i in range(3)}
    if kind == "key":
        listing[draw(st.sampled_from(UNSAFE_KEYS))] = listing.pop("case_000")
    else:
        listing["case_000"][draw(st.sampled_from(["images", "label"]))] = draw(st.sampled_from(UNSAFE_PATHS))
        if isinstance(listing["case_000"]["images"], str):
            listing["case_000"]["images"] = [listing["case_000"]["images"]]
    return _apply([("dataset", listing)])


def _is_json_object(data: bytes) -> bool:
    try:
        return isinstance(json.loads(data.decode("utf-8")), dict)
    except ValueError:
        return False


@st.composite
def file_additions(draw: st.DrawFn) -> list[tuple[str, str, str]]:
    """1-2 (folder, file name, content kind) additions to imagesTr / labelsTr."""
    out = []
    for _ in range(draw(st.integers(1, 2))):
        folder = draw(st.sampled_from(["imagesTr", "labelsTr"]))
        stem = draw(st.text(NAME_CHARS, min_size=1, max_size=16))
        suffix = draw(st.sampled_from(["_0000.nii.gz", ".nii.gz", "_0001.nii.gz", "", "_0000.nii", ".txt"]))
        kind = draw(st.sampled_from(["copy", "garbage", "empty", "loop", "dangling", "folder"]))
        out.append((folder, stem + suffix, kind))
    return out


def _add_files(additions: list[tuple[str, str, str]]) -> Any:
    def mutate(root: Path) -> bool:
        source = root / "imagesTr" / "case_000_0000.nii.gz"
        for folder, name, kind in additions:
            path = root / folder / name
            try:
                if path.exists() or path.is_symlink():
                    continue
                if kind == "copy":
                    path.write_bytes(source.read_bytes())
                elif kind == "garbage":
                    path.write_bytes(b"\x1f\x8b not really gzip" * 3)
                elif kind == "empty":
                    path.write_bytes(b"")
                elif kind == "loop":
                    path.symlink_to(name)
                elif kind == "dangling":
                    path.symlink_to(root / "nowhere.nii.gz")
                else:
                    path.mkdir()
            except (OSError, ValueError):
                return False
        return True

    return mutate


@FAST
@given(mutations=spec_mutations())
def test_fuzz_dataset_json(template: Path, mutations: list[tuple[str, Any]]) -> None:
    _check(template, _apply(mutations), must_fail=False)


@FAST
@given(mutate=hostile_spec())
def test_fuzz_hostile_dataset_json(template: Path, mutate: Any) -> None:
    _check(template, mutate, must_fail=True)


@FAST
@given(additions=file_additions())
def test_fuzz_file_names(template: Path, additions: list[tuple[str, str, str]]) -> None:
    _check(template, _add_files(additions), must_fail=False)


@FAST
@given(stem=st.text(NAME_CHARS, min_size=1, max_size=8).filter(lambda s: not s.startswith((".", "_"))),
       bad=st.sampled_from(["\x01", "\x1b", "\x7f", "\t"]), kind=st.sampled_from(["copy", "loop"]))
def test_fuzz_hostile_file_names(template: Path, stem: str, bad: str, kind: str) -> None:
    """A case id with a control character, or an image that is a link loop, must be refused (names starting with
    ``.`` or ``_`` are hidden files, which discovery skips by design)."""
    _check(template, _add_files([("imagesTr", f"{stem}{bad}_0000.nii.gz" if kind == "copy" else
                                  f"{stem}_0000.nii.gz", kind)]), must_fail=True)


@pytest.mark.slow
@DEEP
@given(mutations=spec_mutations())
def test_fuzz_dataset_json_deep(template: Path, mutations: list[tuple[str, Any]]) -> None:
    _check(template, _apply(mutations), must_fail=False)


@pytest.mark.slow
@DEEP
@given(mutate=hostile_spec())
def test_fuzz_hostile_dataset_json_deep(template: Path, mutate: Any) -> None:
    _check(template, mutate, must_fail=True)


@pytest.mark.slow
@DEEP
@given(additions=file_additions())
def test_fuzz_file_names_deep(template: Path, additions: list[tuple[str, str, str]]) -> None:
    _check(template, _add_files(additions), must_fail=False)
