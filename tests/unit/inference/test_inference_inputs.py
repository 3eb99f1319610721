"""Case discovery (channels, missing channels, plain files, DICOM folders), sharding and the thread pipeline."""

from __future__ import annotations

import os
import threading
import time
from pathlib import Path

import pytest

from autounet.errors import UsageError
from autounet.inference.inputs import DICOM_ENDING, CaseInput, check_channels, discover_cases, shard
from autounet.inference.runner import Stages, run_cases


def _touch(folder: Path, *names: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    out = []
    for n in names:
        (folder / n).write_bytes(b"x")
        out.append(folder / n)
    return out


def test_folder_groups_channels_and_reports_missing_ones(tmp_path):
    _touch(tmp_path, "a_0000.nii.gz", "a_0001.nii.gz", "b_0000.nii.gz", "c_0001.nrrd", "c_0000.nrrd", "notes.txt")
    cases = discover_cases([tmp_path], num_channels=2)
    assert [c.case_id for c in cases] == ["a", "b", "c"]
    a, b, c = cases
    assert a.error is None and [p.name for p in a.images] == ["a_0000.nii.gz", "a_0001.nii.gz"]
    assert a.ending == ".nii.gz" and c.ending == ".nrrd" and c.images[0].name == "c_0000.nrrd"
    # b_0000 alone may hold both channels (an RGB image, a 4D file): accepted, counted when read
    assert b.error is None and b.missing == ("b_0001.nii.gz",)


def test_missing_leading_channel_is_an_error(tmp_path):
    _touch(tmp_path, "a_0001.png")
    (case,) = discover_cases([tmp_path], num_channels=3)
    assert case.error is not None and "missing a_0000.png, a_0002.png" in case.error


def test_check_channels_names_case_and_files(tmp_path):
    _touch(tmp_path, "cell_0000.png")
    (case,) = discover_cases([tmp_path], num_channels=3)
    check_channels(case, 3, 3)  # one RGB file holds R, G, B
    with pytest.raises(UsageError, match=r"case cell: cell_0000.png hold\(s\) 1 channel\(s\) but the model needs 3.*"
                                         r"missing cell_0001.png, cell_0002.png"):
        check_channels(case, 1, 3)


def test_extra_channel_is_an_error_of_that_case(tmp_path):
    _touch(tmp_path, "a_0000.png", "a_0001.png")
    (case,) = discover_cases([tmp_path], num_channels=1)
    assert "unexpected a_0001.png" in case.error


def test_plain_files_are_single_channel_cases(tmp_path):
    files = _touch(tmp_path, "liver.nii.gz", "brain.mha")
    cases = discover_cases(files, num_channels=1)
    assert [(c.case_id, c.ending) for c in cases] == [("brain", ".mha"), ("liver", ".nii.gz")]
    # with several channels, a plain file is one case holding all of them (an RGB photo); checked when read
    rgb = discover_cases(_touch(tmp_path, "photo.jpg"), num_channels=3)
    assert [(c.case_id, c.error) for c in rgb] == [("photo", None)]


def test_dicom_folders(tmp_path):
    series = tmp_path / "patient1"
    _touch(series, "IM0001.dcm", "IM0002.dcm")
    (case,) = discover_cases([series], num_channels=1)
    assert case.case_id == "patient1" and case.is_dicom and case.images == (series,)
    _touch(tmp_path / "patient2", "slice1.dcm")
    cases = discover_cases([tmp_path], num_channels=1)
    assert [c.case_id for c in cases] == ["patient1", "patient2"]


def test_given_cases_keep_their_ids_and_files(tmp_path):
    """A dataset's cases (e.g. DICOM series folders as channels) are predicted under their own ids."""
    t1 = _touch(tmp_path / "c1" / "T1", "IM1.dcm")[0].parent
    flair = _touch(tmp_path / "c1" / "FLAIR", "IM1.dcm")[0].parent
    given = CaseInput(case_id="patient1", images=(t1, flair), ending=DICOM_ENDING)
    plain = _touch(tmp_path, "other_0000.nii.gz", "other_0001.nii.gz")
    cases = discover_cases([*plain, given], num_channels=2)
    assert [(c.case_id, c.images) for c in cases] == [("other", tuple(plain)), ("patient1", (t1, flair))]
    with pytest.raises(UsageError, match="not found"):
        discover_cases([CaseInput("gone", (tmp_path / "gone",), "")], num_channels=1)
    with pytest.raises(UsageError, match="twice"):
        discover_cases([given, given], num_channels=2)


def test_dicom_detected_by_magic_bytes(tmp_path):
    folder = tmp_path / "s"
    folder.mkdir()
    (folder / "IM1").write_bytes(b"\0" * 128 + b"DICM" + b"\0" * 10)
    (case,) = discover_cases([folder], num_channels=1)
    assert case.is_dicom


def test_missing_input_and_empty_folder(tmp_path):
    with pytest.raises(UsageError, match="not found"):
        discover_cases([tmp_path / "nope"], num_channels=1)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UsageError, match="No cases"):
        discover_cases([tmp_path / "empty"], num_channels=1)


def test_duplicate_case_ids(tmp_path):
    a = _touch(tmp_path / "x", "a_0000.nii.gz")
    b = _touch(tmp_path / "y", "a_0000.nii.gz")
    with pytest.raises(UsageError, match="twice"):
        discover_cases([*a, *b], num_channels=1)


def test_shard_is_strided_like_the_reference():
    cases = list(range(10))
    assert shard(cases, part=1, parts=3) == [1, 4, 7]
    assert sorted(c for k in range(3) for c in shard(cases, part=k, parts=3)) == cases
    with pytest.raises(UsageError):
        shard(cases, part=3, parts=3)


def test_pipeline_reports_failures_and_finishes_the_rest():
    exported = []

    def load(c):
        if c == "bad_read":
            raise ValueError("corrupt file")
        return c

    def predict(x):
        if x == "bad_net":
            raise RuntimeError("boom")
        return x.upper()

    def export(c, loaded, pred):
        if c == "bad_write":
            raise OSError("disk full")
        exported.append(pred)

    cases = ["a", "bad_read", "b", "bad_net", "c", "bad_write", "d"]
    done = []
    report = run_cases(cases, Stages(load, predict, export), case_id=str, on_done=done.append)
    assert sorted(report.written) == ["a", "b", "c", "d"] and sorted(exported) == ["A", "B", "C", "D"]
    stages = {f.case_id: (f.stage, f.message) for f in report.failed}
    assert stages == {"bad_read": ("reading/preprocessing", "ValueError: corrupt file"),
                      "bad_net": ("prediction", "RuntimeError: boom"),
                      "bad_write": ("export", "OSError: disk full")}
    assert sorted(done) == sorted(cases) and not report.ok


def test_pipeline_overlaps_loading_and_export_with_prediction():
    main = threading.get_ident()
    threads = {"load": set(), "export": set(), "predict": set()}

    def load(c):
        threads["load"].add(threading.get_ident())
        time.sleep(0.1)
        return c

    def predict(x):
        threads["predict"].add(threading.get_ident())
        time.sleep(0.1)
        return x

    def export(c, loaded, pred):
        threads["export"].add(threading.get_ident())
        time.sleep(0.1)

    start = time.perf_counter()
    report = run_cases(list(range(8)), Stages(load, predict, export), case_id=str)
    elapsed = time.perf_counter() - start
    assert len(report.written) == 8
    assert threads["predict"] == {main} and main not in threads["load"] | threads["export"]
    assert elapsed < 0.8 * 8 * 0.3  # sequential would take 2.4 s; overlapped about 1 s


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="per-thread priorities are a Linux feature")
def test_reading_and_export_threads_run_at_a_lower_priority():
    def nice() -> int:
        return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())

    seen: dict[str, set[int]] = {"load": set(), "predict": set(), "export": set()}

    def stage(name, value):
        seen[name].add(nice())
        return value

    base = nice()
    run_cases(list(range(3)), Stages(lambda c: stage("load", c), lambda x: stage("predict", x),
                                     lambda c, x, y: stage("export", None)), case_id=str, background_nice=10)
    assert seen == {"load": {min(19, base + 10)}, "predict": {base}, "export": {min(19, base + 10)}}
    assert nice() == base  # the calling thread (the network's) keeps its priority
    seen = {"load": set(), "predict": set(), "export": set()}
    run_cases(list(range(2)), Stages(lambda c: stage("load", c), lambda x: stage("predict", x),
                                     lambda c, x, y: stage("export", None)), case_id=str)
    assert seen == {"load": {base}, "predict": {base}, "export": {base}}
