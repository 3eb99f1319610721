"""Process hygiene and shared-storage safety: workers die with their parent, temporaries and claims carry their
owner, two runs on one dataset both finish with correct outputs, cluster errors are one line."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from autounet._atomic import atomic_path, claim_is_stale, owner_tag, try_claim
from autounet.preprocessing.store import remove_temporary_files

SRC = Path(__file__).resolve().parents[3] / "src"


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(SRC)}


def _children(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True, check=False)
    return [int(p) for p in out.stdout.split()]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    status = Path(f"/proc/{pid}/status")
    return not (status.is_file() and "State:\tZ" in status.read_text(encoding="utf-8"))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses ps --ppid and /proc")
@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_workers_end_with_their_killed_parent(method: str) -> None:
    code = ("import time\nimport autounet._parallel as p\n"
            f"p.start_method = lambda: {method!r}\n"
            "p.map_cases(time.sleep, [60.0, 60.0], workers=2)\n")
    parent = subprocess.Popen([sys.executable, "-c", code], env=_env(), start_new_session=True)
    try:
        deadline = time.monotonic() + 60
        workers: list[int] = []
        while time.monotonic() < deadline and len(workers) < 2:
            time.sleep(0.2)
            workers = _children(parent.pid) if parent.poll() is None else []
        assert len(workers) >= 2, "the pool did not start"
        others = _children(parent.pid)
        parent.send_signal(signal.SIGKILL)
        parent.wait()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and any(_alive(p) for p in others):
            time.sleep(0.1)
        assert not [p for p in others if _alive(p)], "processes of the killed command remain"
    finally:
        if parent.poll() is None:
            os.killpg(parent.pid, signal.SIGKILL)


def test_temporaries_carry_their_owner_and_live_ones_are_kept(tmp_path) -> None:
    target = tmp_path / "case.b2nd"
    with atomic_path(target) as tmp:
        assert owner_tag() in tmp.name
        tmp.write_bytes(b"in flight")
        assert remove_temporary_files(tmp_path) == 0  # our own live write is not touched
        assert tmp.exists()
    assert target.read_bytes() == b"in flight"
    host = owner_tag().split("~")[1]
    dead = tmp_path / f".other.b2nd.~{host}~999999999~abc.tmp.b2nd"  # its writer (this host) is gone
    dead.write_bytes(b"x")
    elsewhere = tmp_path / ".third.b2nd.~some-other-host~12~abc.tmp.b2nd"  # another machine's, fresh
    elsewhere.write_bytes(b"x")
    assert remove_temporary_files(tmp_path) == 1
    assert not dead.exists() and elsewhere.exists()
    old = time.time() - 2 * 3600
    os.utime(elsewhere, (old, old))
    assert remove_temporary_files(tmp_path) == 1
    assert not elsewhere.exists()  # ... until it is abandoned


def test_claims_are_exclusive_and_stale_ones_taken_over(tmp_path) -> None:
    path = tmp_path / ".case.claim"
    claim = try_claim(path)
    assert claim is not None and try_claim(path) is None  # held by a live process (us)
    claim.release()
    assert not path.exists()
    host = owner_tag().split("~")[1]
    path.write_text(f'{{"host": "{host}", "pid": 999999999, "time": 0}}', encoding="utf-8")
    assert claim_is_stale(path)
    taken = try_claim(path)
    assert taken is not None
    taken.release()
    path.write_text('{"host": "elsewhere", "pid": 1, "time": 0}', encoding="utf-8")
    assert try_claim(path) is None  # a fresh claim of another host is respected
    old = time.time() - 2 * 3600
    os.utime(path, (old, old))
    assert try_claim(path) is not None


def test_two_concurrent_preprocess_runs_finish_with_correct_outputs(tmp_path) -> None:
    from autounet.preprocessing.store import CaseStore
    from autounet.testing import make_synthetic_dataset
    from autounet.workspace import Workspace

    root = tmp_path / "ws"
    ws = Workspace.at(root).ensure()
    make_synthetic_dataset(ws.raw / "Dataset998_Synthetic", n_cases=8, shape=(8, 24, 24), spacing=(2.0, 1.0, 1.0))
    cli = [sys.executable, "-m", "autounet"]
    env = {**_env(), "AUTOUNET_HOME": str(root)}
    plan = subprocess.run([*cli, "plan", "998", "--workspace", str(root), "-j", "1"], env=env, capture_output=True,
                          text=True, encoding="utf-8", timeout=300, check=False)
    assert plan.returncode == 0, plan.stderr
    runs = [subprocess.Popen([*cli, "preprocess", "998", "-c", "3d_fullres", "--workspace", str(root), "-j", "1"],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, encoding="utf-8")
            for _ in range(2)]
    outputs = [r.communicate(timeout=300) for r in runs]
    assert [r.returncode for r in runs] == [0, 0], [o[1] for o in outputs]
    folder = next((ws.preprocessed / "Dataset998_Synthetic").glob("*3d_fullres"))
    store = CaseStore(folder)
    assert store.case_ids() == [f"case_{i:03d}" for i in range(8)]
    assert not [p for p in folder.iterdir() if p.name.startswith(".")], "temporaries or claims left behind"
    reference = tmp_path / "serial"
    serial_ws = Workspace.at(reference).ensure()
    (serial_ws.raw / "Dataset998_Synthetic").symlink_to(ws.raw / "Dataset998_Synthetic")
    from autounet.preprocessing import run as run_preprocessing
    from autounet.schemas.plans import load_plans

    plans = load_plans(ws.plans_file("Dataset998_Synthetic", "nnUNetPlans"))
    run_preprocessing(serial_ws, "Dataset998_Synthetic", plans, ["3d_fullres"], workers=1)
    expected = CaseStore(serial_ws.preprocessed_data("Dataset998_Synthetic", folder.name))
    for case in store.case_ids():
        for got, want in zip(store.load(case), expected.load(case)):
            np.testing.assert_array_equal(got, want)


def test_unreachable_scheduler_is_one_line(tmp_path) -> None:
    pytest.importorskip("distributed")
    proc = subprocess.run([sys.executable, "-m", "autounet", "evaluate", str(tmp_path), str(tmp_path), "-l", "1",
                           "--cluster", "tcp://127.0.0.1:9"], env=_env(), capture_output=True, text=True,
                          encoding="utf-8", timeout=120, check=False)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "Cannot reach the Dask scheduler at tcp://127.0.0.1:9" in lines[0], proc.stderr


def test_missing_batch_system_is_one_line(tmp_path) -> None:
    pytest.importorskip("dask_jobqueue")
    env = {**_env(), "PATH": str(Path(sys.executable).parent)}  # no sbatch there
    proc = subprocess.run([sys.executable, "-m", "autounet", "evaluate", str(tmp_path), str(tmp_path), "-l", "1",
                           "--cluster", "slurm"], env=env, capture_output=True, text=True, encoding="utf-8",
                          timeout=120, check=False)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "'sbatch' is not on this machine's PATH" in lines[0], proc.stderr
