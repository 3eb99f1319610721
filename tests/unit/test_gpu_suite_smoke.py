"""CPU smoke run of the GPU suite (``benchmarks/gpu_suite.py``) and of the GPU tests (``tests/gpu``)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SUITE = REPO / "benchmarks" / "gpu_suite.py"


def _suite_module():
    spec = importlib.util.spec_from_file_location("gpu_suite", SUITE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["gpu_suite"] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_suite_smoke_run_measures_every_shape(tmp_path: Path) -> None:
    out = tmp_path / "gpu.json"
    assert _suite_module().main(["run", "--device", "cpu", "--smoke", "--out", str(out)]) == 0
    results = json.loads(out.read_text(encoding="utf-8"))
    assert set(results["shapes"]) == {"hippocampus_3d_fullres", "hippocampus_2d", "ct_3d_fullres"}
    for name, items in results["shapes"].items():
        assert set(items) == {"train_fp32", "data_wait", "augmentation", "inference"}, name
        assert not any("error" in v for v in items.values()), items
        assert items["train_fp32"]["it_per_s"] > 0 and items["train_fp32"]["loss_finite"]
        assert 0 <= items["data_wait"]["wait_share"] < 1
        assert items["augmentation"]["batches_per_s"] > 0
        assert items["inference"]["s_per_case"] > 0 and items["inference"]["finite"]
    assert "reference_loader" in results


def test_suite_table_lists_every_measurement() -> None:
    suite = _suite_module()
    results = {"device": "x", "torch": "y", "smoke": True, "reference_loader": {"skipped": "no"},
               "shapes": {"s": {"train_bf16": {"it_per_s": 2.0, "peak_gib": 1.5}, "inference": {"error": "E: x"}}}}
    text = suite.table(results)
    assert "| s | train_bf16 | 2.00 it/s, peak 1.50 GiB |" in text and "| s | inference | E: x |" in text


def test_gpu_tests_run_on_the_cpu() -> None:
    """The GPU tests' code runs (CPU against CPU); ``torch.compile`` is left to the GPU run (minutes on a CPU)."""
    proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "gpu",
                           "--test-device=cpu", "-k", "not compiled", str(REPO / "tests" / "gpu")],
                          cwd=REPO, capture_output=True, text=True, encoding="utf-8", errors="replace", timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and " failed" not in proc.stdout
