"""Fault suite (issue 13, item 8): SIGKILL at seeded random moments, then the same command again.

For ``preprocess``, ``train``, ``predict`` and ``run`` on a small synthetic dataset with tiny budgets, each test
kills the command's process group with SIGKILL (at a moment that is guaranteed mid-work in the fast variants, at a
seeded random moment of an uninterrupted run's duration in the slow ones), runs the same command again and checks

* the results equal an uninterrupted run's (stored arrays, bit-identical weights with ``--deterministic``,
  predicted segmentations, validation metrics);
* nothing finished before the kill was redone (inode and modification time of finished outputs unchanged);
* nothing half-written is left looking complete.

Disk-full tests mount a small tmpfs (root only; skipped elsewhere) under the folder a command writes and check that
it fails with exit 1 and one line, leaves nothing half-written that looks complete, and completes after space is
freed. Each kill prints one ``FAULT ...`` line (``pytest -s``) with the moment and the outcome; the figures in
docs/safety-contracts.md come from ``pytest -m slow -s tests/integration/test_fault_suite.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from autounet.testing import make_synthetic_dataset
from autounet.workspace import Workspace

pytestmark = [pytest.mark.integration, pytest.mark.timeout(1800)]
DATASET = "Dataset982_Fault"
CONFIG = "2d"
REPO = Path(__file__).resolve().parents[2]
DRIVER = Path(__file__).with_name("fault_driver.py")
FOLD = f"results/{DATASET}/nnUNetTrainer__nnUNetPlans__{CONFIG}/fold_0"
TRAIN_FLAGS = ["--epochs", "4", "--iters-per-epoch", "3", "--val-iters", "1", "--seed", "0", "--deterministic",
               "--no-val", "-j", "0", "--resume"]


# ---- helpers ----------------------------------------------------------------------------------------------------
def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO / "src"), env.get("PYTHONPATH", "")) if p)
    env.pop("AUTOUNET_HOME", None)
    return env


def _cli(root: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "autounet", *args, "--workspace", str(root), "--no-progress"]


def _preprocess(root: Path) -> list[str]:
    return _cli(root, "preprocess", DATASET, "-c", "2d", "3d_fullres", "-j", "1")


def _train(root: Path) -> list[str]:
    return _cli(root, "train", DATASET, CONFIG, "0", *TRAIN_FLAGS)


def _predict(root: Path, out: Path) -> list[str]:
    return _cli(root, "predict", "-d", DATASET, "-c", CONFIG, "-f", "0", "--no-tta", "-i",
                str(root / "raw" / DATASET / "imagesTs"), "-o", str(out), "--device", "cpu")


def _run(root: Path) -> list[str]:
    return [sys.executable, str(DRIVER), str(root), DATASET]


def _complete(cmd: list[str], *, timeout: float = 900) -> tuple[subprocess.CompletedProcess[str], float]:
    start = time.monotonic()
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, encoding="utf-8", errors="replace",
                          timeout=timeout, check=False)
    assert proc.returncode == 0, (proc.stdout[-2000:], proc.stderr[-3000:])
    return proc, time.monotonic() - start


@dataclass
class Kill:
    """Where a kill landed: seconds after the start, and whether the command was still running."""

    at: float
    killed: bool


def _kill(cmd: list[str], *, delay: float, ready: Callable[[], bool] | None = None, timeout: float = 600) -> Kill:
    """Start ``cmd``, wait until ``ready()`` (if given) and then ``delay`` seconds, SIGKILL its process group."""
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    start = time.monotonic()
    try:
        while ready is not None and not ready() and proc.poll() is None:
            assert time.monotonic() - start < timeout, "the command never reached the kill point"
            time.sleep(0.02)
        end = time.monotonic() + delay
        while time.monotonic() < end and proc.poll() is None:
            time.sleep(0.01)
        at = time.monotonic() - start
        if proc.poll() is not None:
            return Kill(at, killed=False)
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=60)
        return Kill(at, killed=True)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def _moment(seed: int, stream: int, units: int, unit_seconds: float) -> tuple[int, float]:
    """A seeded random moment of a command's work: after ``k`` of ``units`` finished units (k uniform in
    ``[0, units)``) plus a delay uniform within one unit's duration. Anchoring to progress instead of wall time
    keeps the moments inside the work whatever the machine's load (start-up takes most of a small run's time)."""
    rng = np.random.default_rng([stream, seed])
    return int(rng.integers(0, units)), float(rng.uniform(0, unit_seconds))


def _report(command: str, variant: str, kill: Kill, outcome: str) -> None:
    print(f"FAULT command={command} variant={variant} at={kill.at:.2f}s killed={kill.killed} outcome={outcome}",
          flush=True)


def _stamps(paths: list[Path]) -> dict[Path, tuple[int, int]]:
    return {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in paths if p.is_file()}


def _assert_untouched(before: dict[Path, tuple[int, int]]) -> None:
    changed = [p.name for p, stamp in before.items() if not p.is_file() or (p.stat().st_ino, p.stat().st_mtime_ns)
               != stamp]
    assert not changed, f"finished outputs were redone: {changed}"


def _copy(src: Path, dst: Path) -> Path:
    shutil.copytree(src, dst, symlinks=True)
    return dst


def _weights(root: Path) -> dict[str, object]:
    import torch

    ckpt = torch.load(root / FOLD / "checkpoint_final.pth", map_location="cpu", weights_only=False)
    return ckpt["network_weights"]


def _same_weights(a: Path, b: Path) -> bool:
    import torch

    wa, wb = _weights(a), _weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)  # type: ignore[arg-type]


# ---- shared state -----------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def base(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Dataset (5 training + 6 test cases), planned; nothing preprocessed."""
    root = tmp_path_factory.mktemp("fault") / "base"
    ws = Workspace.at(root).ensure()
    make_synthetic_dataset(ws.raw / DATASET, n_cases=5, n_test=6, shape=(8, 24, 24), spacing=(2.0, 1.0, 1.0),
                           seed=7)
    _complete(_cli(root, "plan", DATASET, "-j", "1"))
    return root


@pytest.fixture(scope="module")
def preprocessed(base: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    """An uninterrupted preprocess (2d and 3d_fullres) and how long it took."""
    root = _copy(base, tmp_path_factory.mktemp("fault") / "pre")
    _, seconds = _complete(_preprocess(root))
    return root, seconds


@pytest.fixture(scope="module")
def trained(preprocessed: tuple[Path, float], tmp_path_factory: pytest.TempPathFactory
            ) -> tuple[Path, float, float]:
    """An uninterrupted training of fold 0 and prediction of the test images: (root, train s, predict s)."""
    root = _copy(preprocessed[0], tmp_path_factory.mktemp("fault") / "trained")
    _, train_s = _complete(_train(root))
    _, predict_s = _complete(_predict(root, root / "pred"))
    return root, train_s, predict_s


@pytest.fixture(scope="module")
def ran(base: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, float]:
    """An uninterrupted ``run`` (2d, fold 0, tiny seeded budget) and how long it took."""
    root = _copy(base, tmp_path_factory.mktemp("fault") / "ran")
    _, seconds = _complete(_run(root))
    return root, seconds


# ---- preprocess ---------------------------------------------------------------------------------------------------
def _store_folders(root: Path) -> list[Path]:
    return [Workspace.at(root).preprocessed_data(DATASET, f"nnUNetPlans_{c}") for c in ("2d", "3d_fullres")]


def _check_preprocess(root: Path, reference: Path, kill: Kill, variant: str) -> None:
    from autounet.preprocessing import CaseStore

    finished: list[Path] = []
    for folder in _store_folders(root):
        if folder.is_dir():
            store = CaseStore(folder)
            for case in store.case_ids():  # whatever is visible is complete and intact
                store.check(case, full=True)
                finished += [p for p in folder.iterdir() if p.name.startswith(f"{case}.") or
                             p.name.startswith(f"{case}_")]
    before = _stamps(finished)
    _complete(_preprocess(root))
    _assert_untouched(before)
    for folder, ref_folder in zip(_store_folders(root), _store_folders(reference)):
        store, ref = CaseStore(folder), CaseStore(ref_folder)
        assert store.case_ids() == ref.case_ids()
        assert not [p for p in folder.iterdir() if ".tmp" in p.name]
        for case in ref.case_ids():
            a, b = store.load(case), ref.load(case)
            assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]), case
    _report("preprocess", variant, kill, f"equal, {len(before)} finished file(s) kept")


def test_preprocess_killed_mid_run_resumes(base: Path, preprocessed: tuple[Path, float], tmp_path: Path) -> None:
    root = _copy(base, tmp_path / "ws")
    first = _store_folders(root)[0]
    kill = _kill(_preprocess(root), delay=0.0,  # a committed record (temporary files start with a dot)
                 ready=lambda: first.is_dir() and any(not p.name.startswith(".") for p in first.glob("*.json")))
    assert kill.killed, "preprocess finished before the kill"
    _check_preprocess(root, preprocessed[0], kill, "after-first-case")


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(6))
def test_preprocess_killed_at_random_moment(base: Path, preprocessed: tuple[Path, float], tmp_path: Path,
                                            seed: int) -> None:
    root = _copy(base, tmp_path / "ws")
    k, delay = _moment(seed, 13, 10, 0.5)  # 10 case records (5 cases x 2 configurations), ~0.3 s each
    folders = _store_folders(root)

    def records() -> int:
        return sum(1 for f in folders if f.is_dir() for p in f.glob("*.json") if not p.name.startswith("."))

    kill = _kill(_preprocess(root), delay=delay, ready=lambda: records() >= k)
    _check_preprocess(root, preprocessed[0], kill, f"random-{seed} (after {k} records + {delay:.2f} s)")


# ---- train --------------------------------------------------------------------------------------------------------
def _epochs_logged(root: Path) -> int:
    log = root / FOLD / "training_log.jsonl"
    if not log.is_file():
        return 0
    return sum(1 for line in log.read_text(encoding="utf-8").splitlines() if line.strip())


def _check_train(root: Path, reference: Path, kill: Kill, variant: str) -> None:
    final = root / FOLD / "checkpoint_final.pth"
    before = _stamps([final])
    mid = kill.killed and not final.is_file() and (root / FOLD / "checkpoint_latest.pth").is_file()
    proc, _ = _complete(_train(root))
    _assert_untouched(before)
    if mid:
        assert "Resuming from" in proc.stdout + proc.stderr and "checkpoint_latest.pth" in proc.stdout + proc.stderr
    assert _same_weights(root, reference), "the resumed training differs from the uninterrupted one"
    outcome = "resumed from checkpoint, bit-identical" if mid else "bit-identical"
    _report("train", variant, kill, outcome if not before else "finished before the kill, not redone")


def test_train_killed_mid_training_resumes_bit_identical(preprocessed: tuple[Path, float],
                                                         trained: tuple[Path, float, float], tmp_path: Path) -> None:
    root = _copy(preprocessed[0], tmp_path / "ws")
    latest, final = root / FOLD / "checkpoint_latest.pth", root / FOLD / "checkpoint_final.pth"
    kill = _kill(_train(root), delay=0.0, ready=lambda: latest.is_file() and _epochs_logged(root) >= 1)
    assert kill.killed and not final.is_file(), "training finished before the kill"
    assert _epochs_logged(root) < 4
    _check_train(root, trained[0], kill, "after-first-epoch")


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(3))
def test_train_killed_at_random_moment(preprocessed: tuple[Path, float], trained: tuple[Path, float, float],
                                       tmp_path: Path, seed: int) -> None:
    root = _copy(preprocessed[0], tmp_path / "ws")
    k, delay = _moment(seed, 17, 4, 6.0)  # 4 epochs of a few seconds each
    kill = _kill(_train(root), delay=delay, ready=lambda: _epochs_logged(root) >= k)
    _check_train(root, trained[0], kill, f"random-{seed} (after {k} epochs + {delay:.2f} s)")


# ---- predict ------------------------------------------------------------------------------------------------------
def _check_predict(root: Path, reference: Path, kill: Kill, variant: str) -> None:
    from autounet.io import read_segmentation

    out = root / "pred"
    visible = sorted(p for p in out.glob("*.nii.gz") if not p.name.startswith(".")) if out.is_dir() else []
    for p in visible:  # a visible output is complete
        read_segmentation(p)
    before = _stamps(visible)
    _complete(_predict(root, out))
    _assert_untouched(before)
    ref_files = sorted(p.name for p in (reference / "pred").glob("*.nii.gz"))
    assert sorted(p.name for p in out.glob("*.nii.gz")) == ref_files
    for name in ref_files:
        assert np.array_equal(read_segmentation(out / name)[0], read_segmentation(reference / "pred" / name)[0])
    _report("predict", variant, kill, f"equal, {len(before)} finished output(s) kept")


def _model_only(trained: Path, dst: Path) -> Path:
    """The trained workspace without its predictions."""
    root = _copy(trained, dst)
    shutil.rmtree(root / "pred")
    return root


def test_predict_killed_mid_run_resumes(trained: tuple[Path, float, float], tmp_path: Path) -> None:
    root = _model_only(trained[0], tmp_path / "ws")
    out = root / "pred"
    kill = _kill(_predict(root, out), delay=0.0, ready=lambda: out.is_dir() and any(out.glob("test_*.nii.gz")))
    assert list(out.glob("test_*.nii.gz")), "no finished output at the kill"
    assert kill.killed, "predict finished before the kill"
    _check_predict(root, trained[0], kill, "after-first-output")


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(3))
def test_predict_killed_at_random_moment(trained: tuple[Path, float, float], tmp_path: Path, seed: int) -> None:
    root = _model_only(trained[0], tmp_path / "ws")
    out = root / "pred"
    k, delay = _moment(seed, 19, 6, 1.0)  # 6 test cases

    def outputs() -> int:
        return len(list(out.glob("test_*.nii.gz"))) if out.is_dir() else 0

    kill = _kill(_predict(root, out), delay=delay, ready=lambda: outputs() >= k)
    _check_predict(root, trained[0], kill, f"random-{seed} (after {k} outputs + {delay:.2f} s)")


# ---- run ----------------------------------------------------------------------------------------------------------
def _run_outputs(root: Path) -> list[Path]:
    ws = Workspace.at(root)
    files = [root / FOLD / "checkpoint_final.pth", root / FOLD / "validation" / "summary.json"]
    for folder in (ws.preprocessed_data(DATASET, "nnUNetPlans_2d"),):
        if folder.is_dir():
            files += [p for p in folder.iterdir() if not p.name.startswith(".")]
    return files


def _check_run(root: Path, reference: Path, kill: Kill, variant: str) -> None:
    before = _stamps(_run_outputs(root))
    _complete(_run(root))
    _assert_untouched(before)
    assert _same_weights(root, reference)
    ours = json.loads((root / FOLD / "validation" / "summary.json").read_text(encoding="utf-8"))
    theirs = json.loads((reference / FOLD / "validation" / "summary.json").read_text(encoding="utf-8"))
    assert ours.get("foreground_mean") == theirs.get("foreground_mean")
    _report("run", variant, kill, f"equal, {len(before)} finished file(s) kept")


def test_run_killed_mid_training_resumes(base: Path, ran: tuple[Path, float], tmp_path: Path) -> None:
    root = _copy(base, tmp_path / "ws")
    latest = root / FOLD / "checkpoint_latest.pth"
    kill = _kill(_run(root), delay=0.0, ready=latest.is_file)
    assert kill.killed and not (root / FOLD / "checkpoint_final.pth").is_file()
    _check_run(root, ran[0], kill, "mid-training")


@pytest.mark.slow
@pytest.mark.parametrize("seed", range(2))
def test_run_killed_at_random_moment(base: Path, ran: tuple[Path, float], tmp_path: Path, seed: int) -> None:
    root = _copy(base, tmp_path / "ws")
    ws = Workspace.at(root)
    # milestones of a run: fingerprint, plans, store, epochs 1-4 logged, validation summary
    milestones: list[Callable[[], bool]] = [
        lambda: True,
        lambda: ws.fingerprint_file(DATASET).is_file(),
        lambda: any(ws.preprocessed_data(DATASET, "nnUNetPlans_2d").glob("case_*.json")),
        *[(lambda e=e: _epochs_logged(root) >= e) for e in range(1, 5)],
        lambda: (root / FOLD / "validation" / "summary.json").is_file(),
    ]
    k, delay = _moment(seed, 23, len(milestones), 5.0)
    kill = _kill(_run(root), delay=delay, ready=milestones[k])
    _check_run(root, ran[0], kill, f"random-{seed} (after milestone {k} + {delay:.2f} s)")


# ---- disk full (a small tmpfs; root only) -------------------------------------------------------------------------
def _mount_possible(tmp: Path) -> bool:
    if not sys.platform.startswith("linux") or os.geteuid() != 0 or shutil.which("mount") is None:
        return False
    probe = tmp / "probe"
    probe.mkdir()
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(probe)], capture_output=True,
                        check=False).returncode == 0
    if ok:
        subprocess.run(["umount", str(probe)], check=False)
    return ok


@pytest.fixture
def small_disk(tmp_path: Path):
    """``mount(folder, size)``: a tmpfs of ``size`` at ``folder``; ``grow(folder, size)`` frees space (remount)."""
    if not _mount_possible(tmp_path):
        pytest.skip("mounting a tmpfs needs root on Linux")
    mounted: list[Path] = []

    class Disk:
        @staticmethod
        def mount(folder: Path, size: str) -> None:
            folder.mkdir(parents=True, exist_ok=True)
            subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)], check=True)
            mounted.append(folder)

        @staticmethod
        def grow(folder: Path, size: str) -> None:
            subprocess.run(["mount", "-o", f"remount,size={size}", str(folder)], check=True)

    yield Disk
    for folder in reversed(mounted):
        if subprocess.run(["umount", str(folder)], capture_output=True, check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], check=False)


def _failed(cmd: list[str]) -> str:
    proc = subprocess.run(cmd, env=_env(), capture_output=True, text=True, encoding="utf-8", errors="replace",
                          timeout=900, check=False)
    assert proc.returncode == 1, (proc.returncode, proc.stderr[-3000:])
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    return proc.stderr.strip()


def test_preprocess_disk_full(base: Path, preprocessed: tuple[Path, float], tmp_path: Path, small_disk) -> None:
    from autounet.preprocessing import CaseStore

    root = _copy(base, tmp_path / "ws")
    folder = Workspace.at(root).preprocessed_data(DATASET, "nnUNetPlans_3d_fullres")
    small_disk.mount(folder, "48k")
    cmd = _cli(root, "preprocess", DATASET, "-c", "3d_fullres", "-j", "1", "--quiet")
    err = _failed(cmd)
    assert len(err.splitlines()) == 1 and "no space left" in err and str(folder) in err, err
    store = CaseStore(folder)
    kept = store.case_ids()
    assert len(kept) < 5
    for case in kept:  # what looks complete is complete
        store.check(case, full=True)
    assert not [p for p in folder.iterdir() if ".tmp" in p.name]
    before = _stamps([p for p in folder.iterdir() if p.is_file()])
    small_disk.grow(folder, "16m")
    _complete(cmd)
    _assert_untouched(before)
    ref = CaseStore(_store_folders(preprocessed[0])[1])
    assert CaseStore(folder).case_ids() == ref.case_ids()
    for case in ref.case_ids():
        assert np.array_equal(CaseStore(folder).load(case)[0], ref.load(case)[0])


def test_predict_disk_full(trained: tuple[Path, float, float], tmp_path: Path, small_disk) -> None:
    from autounet.io import read_segmentation

    root = _model_only(trained[0], tmp_path / "ws")
    out = root / "pred"
    small_disk.mount(out, "24k")
    err = _failed(_predict(root, out) + ["--quiet"])
    failures = [line for line in err.splitlines() if "Cannot write" in line]
    assert failures and all("test_" in line and ".nii.gz" in line for line in failures), err
    visible = sorted(out.glob("*.nii.gz"))
    assert len(visible) < 6
    for p in visible:  # what looks complete is complete
        read_segmentation(p)
    before = _stamps(visible)
    small_disk.grow(out, "4m")
    _complete(_predict(root, out))
    _assert_untouched(before)
    for p in sorted((trained[0] / "pred").glob("*.nii.gz")):
        assert np.array_equal(read_segmentation(out / p.name)[0], read_segmentation(p)[0])


def test_checkpoint_disk_full(preprocessed: tuple[Path, float], trained: tuple[Path, float, float],
                              tmp_path: Path, small_disk) -> None:
    import torch

    root = _copy(preprocessed[0], tmp_path / "ws")
    fold = root / FOLD
    small_disk.mount(fold, "6m")  # one checkpoint (3.8 MB) fits, a second one does not
    err = _failed(_train(root) + ["--quiet"])
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and "Cannot write checkpoint" in errors[0] and "no space left" in errors[0], err
    for ckpt in fold.glob("checkpoint_*.pth"):  # what looks complete is complete
        torch.load(ckpt, map_location="cpu", weights_only=False)
    assert not (fold / "checkpoint_final.pth").is_file()
    small_disk.grow(fold, "64m")
    _complete(_train(root))
    assert _same_weights(root, trained[0])
