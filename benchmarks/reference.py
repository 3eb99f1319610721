"""Harness for the reference implementation (nnunetv2==2.8.1) in its own cached virtual environment.

The reference is never a dependency of autounet: it lives in ``.bench_cache/nnunetv2-2.8.1/`` (created on first
use: a venv with the CPU torch wheel and ``nnunetv2==2.8.1``), and is only ever run as a subprocess, with its
three root variables pointing into a folder chosen by the caller. Benchmarks and golden-file scripts use
:func:`reference_python` and :func:`run_reference`.

Usage as a script: ``python benchmarks/reference.py`` creates the venv and prints its interpreter path.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REFERENCE_VERSION = "2.8.1"
# nnunetv2 2.8.1 needs timm, which needs torchvision; the on-disk pair torch 2.14.1 + torchvision 0.29.1
# satisfies both without a multi-GB download (plain `torch` would pull a CUDA build from the index).
TORCH_PINS = ("torch==2.14.1", "torchvision==0.29.1")
REPO_ROOT = Path(__file__).resolve().parents[1]
CACHE = REPO_ROOT / ".bench_cache" / f"nnunetv2-{REFERENCE_VERSION}"


def reference_python() -> Path:
    """The reference venv's interpreter, creating the venv on first use."""
    py = CACHE / "bin" / "python"
    marker = CACHE / ".complete"
    if marker.is_file() and py.is_file():
        return py
    CACHE.parent.mkdir(parents=True, exist_ok=True)
    subprocess.run([sys.executable, "-m", "venv", str(CACHE)], check=True)
    pip = [str(py), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, *TORCH_PINS], check=True)
    subprocess.run([*pip, f"nnunetv2=={REFERENCE_VERSION}"], check=True)
    marker.touch()
    return py


def reference_env(root: Path, *, threads: int | None = None) -> dict[str, str]:
    """Environment for reference commands with its roots under ``root`` (raw, preprocessed, results)."""
    env = dict(os.environ)
    for var, sub in (("nnUNet_raw", "raw"), ("nnUNet_preprocessed", "preprocessed"), ("nnUNet_results", "results")):
        (root / sub).mkdir(parents=True, exist_ok=True)
        env[var] = str(root / sub)
    if threads is not None:
        for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "nnUNet_n_proc_DA"):
            env[var] = str(threads)
    env["nnUNet_compile"] = "f"
    return env


def run_reference(args: list[str], root: Path, *, threads: int | None = None,
                  capture: bool = True) -> subprocess.CompletedProcess[str]:
    """Run a reference console script (e.g. ``["nnUNetv2_plan_experiment", "-d", "4"]``) from its venv."""
    exe = reference_python().parent / args[0]
    return subprocess.run([str(exe), *args[1:]], env=reference_env(root, threads=threads), check=True,
                          text=True, encoding="utf-8", errors="replace", capture_output=capture)


def run_reference_python(code: str, root: Path, *, threads: int | None = None) -> str:
    """Run a Python snippet in the reference venv; returns its stdout."""
    proc = subprocess.run([str(reference_python()), "-c", code], env=reference_env(root, threads=threads),
                          check=True, text=True, encoding="utf-8", errors="replace", capture_output=True)
    return proc.stdout


if __name__ == "__main__":
    print(reference_python())
