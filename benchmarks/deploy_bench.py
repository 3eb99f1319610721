"""Deployment benchmark: PyTorch vs ONNX Runtime backends vs the reference (``nnUNetv2_predict``), against the
machine's float32 compute floor.

Everything lives under ``--root`` (default ``/tmp/autounet_deploy_bench``):

1. The reference model folder of ``benchmarks/inference_bench.py`` (Hippocampus 3d_fullres planned by the reference,
   random weights made with the reference's own network builder), so every tool runs the same network and weights.
2. The floor: network FLOPs per case (``torch.utils.flop_counter`` on one tile x tiles of the case's sliding window x
   mirror passes) over the rate of a 2048x2048 float32 matmul measured here with the same threads.
3. Whole commands, each a fresh process, on ``--cases`` images: whole-command seconds per case = T / N; steady
   state = seconds per case between the k-th (``--warmup-cases``) and the last output file's completion time
   (outputs are written atomically as each case finishes), so start-up and the first cases do not count.
   Tools: ``autounet predict --backend torch``, ``--backend onnxruntime``, ``--backend openvino`` (``torch-bf16``,
   ``openvino-bf16``: with ``--precision bf16``), and the reference; with and without mirroring; voxel agreement
   of the segmentations with the torch backend's. ``--settle-load L`` starts each one on an idle machine.
4. The network alone on a batch of 8 tiles: eager PyTorch in float32 and in bf16 autocast, ``torch.compile``,
   ONNX Runtime float32, OpenVINO float32 and bf16 and (with ``--int8``) the int8-quantized model, in GFLOP/s.
5. ``--trained MODEL_DIR`` (a trained Hippocampus 3d_fullres folder): validation Dice of the float32 model and of
   the reduced-precision opt-ins (PyTorch and OpenVINO bf16; the int8-quantized ONNX export, calibrated on training
   images), on
   ``--dice-cases`` cases of the fold's validation split (``--splits``, default the folder's or the dataset's).

Results are printed as tables and written to ``benchmarks/results/deploy.md`` (rows are added as they finish). The
load average (``os.getloadavg``) is recorded beside every figure: the machine is shared.

Usage: ``python benchmarks/deploy_bench.py [--cases 52] [--warmup-cases 5] [--tools torch,torch-bf16,openvino,...]
[--settle-load 1] [--int8] [--trained DIR --splits splits_final.json]``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from inference_bench import HIPPO, _agreement, _cases, setup, test_cases
from reference import reference_env, reference_python

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "deploy.md"


def _load() -> str:
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


def _ours_env(threads: int) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env["OMP_NUM_THREADS"] = str(threads)
    return env


def _command(tool: str, model_dir: Path, inputs: Path, out: Path, *, tta: bool, threads: int,
             onnx_file: Path | None = None) -> list[str]:
    if tool == "reference":
        return [str(reference_python().parent / "nnUNetv2_predict"), "-i", str(inputs), "-o", str(out), "-d", "4",
                "-c", "3d_fullres", "-f", "0", "-device", "cpu"] + \
            ([] if tta else ["--disable_tta"])
    backend, _, precision = tool.partition("-")
    from_file = onnx_file is not None and backend != "torch"
    model = ["-m", str(onnx_file)] if from_file else ["-m", str(model_dir), "-f", "0"]
    return [sys.executable, "-m", "autounet", "predict", "--quiet", *model, "-i", str(inputs), "-o", str(out),
            "--device", "cpu", "--backend", backend, "--threads", str(threads), "--overwrite",
            "--precision", precision or "fp32"] + ([] if tta else ["--no-tta"])


def _steady(out: Path, *, skip: int) -> float:
    """Seconds per case between the completion of case ``skip`` and the last one (output files' modification
    times: every output is written atomically when its case is done)."""
    times = sorted(f.stat().st_mtime for f in out.glob("*.nii.gz"))
    if len(times) <= skip + 1:
        return float("nan")
    return (times[-1] - times[skip]) / (len(times) - 1 - skip)


def settle(max_load: float | None, *, limit_s: float = 240.0) -> None:
    """Wait (at most ``limit_s``) until the 1-minute load average is under ``max_load``: every timed command starts
    on an idle machine, not in the wake of the previous one."""
    if max_load is None:
        return
    start = time.monotonic()
    while os.getloadavg()[0] >= max_load and time.monotonic() - start < limit_s:
        time.sleep(5)


def _run(cmd: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, encoding="utf-8", errors="replace", check=False)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}")
    return elapsed


# ---- the floor ------------------------------------------------------------------------------------------------------
def matmul_gflops(threads: int, *, sizes: tuple[int, ...] = (2048, 4096), repeats: int = 3,
                  libraries: tuple[str, ...] = ("torch", "numpy")) -> float:
    """The machine's float32 rate: the best of square matmuls (PyTorch's and NumPy's BLAS, several sizes).

    One 2048² torch matmul alone varies between about 135 and 185 GFLOP/s on the shared 2-core VM; the best over
    libraries and sizes is the steadier and the stricter measure of what the cores can do (a higher rate is a lower,
    harder floor)."""
    import torch

    torch.set_num_threads(threads)
    best_rate = 0.0
    for n in sizes:
        pairs = {"torch": (torch.randn(n, n), torch.randn(n, n)),
                 "numpy": (np.random.default_rng(0).random((n, n), dtype=np.float32),
                           np.random.default_rng(1).random((n, n), dtype=np.float32))}
        for a, b in (pairs[lib] for lib in libraries):
            a @ b
            best = min(_timeit(lambda: a @ b) for _ in range(repeats))  # noqa: B023 - used at once
            best_rate = max(best_rate, 2 * n**3 / best / 1e9)
    return best_rate


def _timeit(fn) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def case_flops(model_dir: Path, inputs: Path) -> tuple[float, list[int]]:
    """FLOPs of one tile and the number of tiles of every case (step 0.5, no mirroring)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from autounet.inference import Predictor
    from autounet.inference.sliding import pad_to_patch, tile_grid
    from autounet.io import read_images

    pred = Predictor.from_model_dir(model_dir, folds=(0,), device="cpu", use_mirroring=False)
    patch = pred.model.configuration.patch_size
    x = torch.zeros((1, pred.model.in_channels, *patch))
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        pred.model.networks[0](x)
    tiles = []
    for f in sorted(inputs.glob("*_0000.nii.gz")):
        img, geom = read_images([f])
        data = torch.as_tensor(pred.preprocess(img, geom).data)
        padded, _ = pad_to_patch(data, patch)
        tiles.append(len(tile_grid(padded.shape[1:], patch, 0.5)))
    return float(counter.get_total_flops()), tiles


# ---- network only ---------------------------------------------------------------------------------------------------
def network_table(model_dir: Path, tile_flops: float, threads: int, *, int8: Path | None,
                  compile_: bool) -> list[dict[str, object]]:
    import torch

    from autounet.inference.model import load_model
    from autounet.inference.onnx import onnx_bytes
    from autounet.inference.onnx_runtime import OpenVinoNetwork, OrtNetwork

    torch.set_num_threads(threads)
    model = load_model(model_dir, folds=(0,), device=torch.device("cpu"))
    x = torch.randn(8, model.in_channels, *model.configuration.patch_size)
    rows = []

    def measure(name: str, fn, arg=x) -> None:  # type: ignore[no-untyped-def]
        fn(arg)
        best = min(_timeit(lambda: fn(arg)) for _ in range(3))
        rows.append({"runner": name, "s_per_8_tiles": best, "gflops": 8 * tile_flops / best / 1e9, "load": _load()})
        print(f"  {name}: {best:.2f} s per 8 tiles, {8 * tile_flops / best / 1e9:.1f} GFLOP/s (load {_load()})",
              flush=True)

    net = model.networks[0]
    with torch.inference_mode():
        measure("PyTorch eager float32", net)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            measure("PyTorch eager bf16 autocast", net)
    (graph,) = onnx_bytes(model)
    host = x.numpy()  # the ONNX runtimes take NumPy arrays
    measure("ONNX Runtime float32", OrtNetwork(graph, threads=threads), host)
    try:
        measure("OpenVINO float32 (static shape)", OpenVinoNetwork(graph, threads=threads), host)
        from autounet.precision import cpu_flags_have_bf16

        if cpu_flags_have_bf16():
            measure("OpenVINO bf16 (static shape)", OpenVinoNetwork(graph, threads=threads, precision="bf16"), host)
    except ImportError as exc:
        rows.append({"runner": "OpenVINO float32", "error": f"not installed ({exc})"})
    if int8 is not None and int8.is_file():
        measure("ONNX Runtime int8 (QDQ)", OrtNetwork(int8, threads=threads), host)
    if compile_:
        try:
            compiled = torch.compile(net, dynamic=False)
            with torch.inference_mode():
                measure("PyTorch torch.compile", compiled)
        except Exception as exc:  # noqa: BLE001 - report and go on
            rows.append({"runner": "PyTorch torch.compile", "error": f"{type(exc).__name__}: {str(exc)[:200]}"})
    return rows


# ---- int8 validation Dice -------------------------------------------------------------------------------------------
def _dice(pred: np.ndarray, ref: np.ndarray, labels: tuple[int, ...]) -> float:
    out = []
    for lab in labels:
        p, r = pred == lab, ref == lab
        denom = p.sum() + r.sum()
        out.append(1.0 if denom == 0 else 2.0 * float((p & r).sum()) / float(denom))
    return float(np.mean(out))


def precision_dice(trained: Path, root: Path, *, n_cases: int, n_calibration: int, threads: int,
                   splits: Path | None) -> dict[str, object]:
    """Validation Dice of a trained model in float32 and in the reduced-precision opt-ins (PyTorch bf16 autocast,
    OpenVINO bf16, the int8-quantized ONNX export), each against the float32 PyTorch model."""
    from autounet.inference import Predictor
    from autounet.inference.onnx import calibration_tiles, export_onnx, quantize_int8
    from autounet.io import read_images, read_segmentation

    splits = splits or trained / "splits_final.json"
    if splits.is_file():
        fold0 = json.loads(splits.read_text(encoding="utf-8"))[0]
        val, train = list(fold0["val"]), list(fold0["train"])
    else:
        cases = _cases()
        val, train = cases[-n_cases:], cases[: n_calibration]
    val = val[:n_cases]
    fp32_onnx = export_onnx(trained, root / "trained.onnx", folds=(0,))
    calib = [[HIPPO / "images" / f"{c}.nii.gz"] for c in train[:n_calibration]]
    int8 = quantize_int8(fp32_onnx, root / "trained.int8.onnx", calibration_tiles(fp32_onnx, calib))
    variants = {"torch float32": (trained, "torch", "fp32"), "torch bf16": (trained, "torch", "bf16"),
                "onnxruntime float32": (fp32_onnx, "onnxruntime", "fp32"),
                "onnxruntime int8": (int8, "onnxruntime", "fp32"),
                "openvino float32": (fp32_onnx, "openvino", "fp32"),
                "openvino bf16": (fp32_onnx, "openvino", "bf16")}
    dice: dict[str, float] = {}
    for name, (path, backend, precision) in variants.items():
        pred = Predictor.from_model_dir(path, folds=(0,), backend=backend, threads=threads, precision=precision)
        scores = []
        for c in val:
            img, geom = read_images([HIPPO / "images" / f"{c}.nii.gz"])
            seg = pred.predict(img, geom).segmentation
            ref, _ = read_segmentation(HIPPO / "labels" / f"{c}.nii.gz")
            scores.append(_dice(seg, ref[0], (1, 2)))
        dice[name] = float(np.mean(scores))
        print(f"  {name}: mean validation Dice {dice[name]:.4f} on {len(val)} cases", flush=True)
    return {"validation_cases": len(val), "calibration_cases": len(calib), "load": _load(), "dice": dice}


# ---- report ---------------------------------------------------------------------------------------------------------
def write_report(state: dict[str, object]) -> None:
    """Write the Markdown report (``state["report"]``, default ``benchmarks/results/deploy.md``)."""
    lines = ["# Deployment benchmark (benchmarks/deploy_bench.py)", "",
             f"Run {state['started']}; {state['cases']} Hippocampus cases (steady state from the output files' "
             f"completion times after the first {state['warmup']}), {state['threads']} threads, CPU (load "
             "averages 1/5/15 min beside each figure; idle means a 1-minute load average under 1). Ratios between "
             "tools run back to back in one run are the comparable part.", ""]
    floor = state.get("floor")
    if isinstance(floor, dict):
        lines += ["## Float32 compute floor", "",
                  f"- network: {floor['tile_gflop']:.1f} GFLOP per {floor['patch']} tile; "
                  f"{floor['mean_tiles']:.2f} tiles per case on average",
                  f"- float32 matmul here (best of PyTorch and NumPy, 2048² and 4096²): {floor['matmul_gflops']:.1f} "
                  f"GFLOP/s at the start (load {floor['load']})",
                  f"- (one 2048² PyTorch matmul alone, the issue's first measure: "
                  f"{floor.get('torch2048_gflops', float('nan')):.1f} GFLOP/s)",
                  f"- floor at the best rate: {floor['floor_notta']:.3f} s per case without mirroring, "
                  f"{floor['floor_tta']:.3f} s with (8 passes)",
                  "- each timed command gets its own floor: the rate is measured again just before and just after "
                  "it, and the higher of the two (the lower, stricter floor) is used for its ratios", ""]
    if "onnx_export_seconds" in state:
        lines += [f"onnxruntime and openvino predict from an .onnx file exported once beforehand "
                  f"(`autounet export-model --format onnx`, {state['onnx_export_seconds']:.1f} s, not counted).", ""]
    rows = state.get("rows", [])
    if rows:
        lines += ["## Seconds per case", "",
                  "| tool | mirroring | cases | steady s/case | whole-command s/case | matmul GFLOP/s | floor s/case | "
                  "x floor (steady) | x floor (whole) | voxels equal to torch backend | load before -> after |",
                  "|---|---|---|---|---|---|---|---|---|---|---|"]
        for r in rows:  # type: ignore[union-attr]
            agree = f"{r['agreement']:.5f}" if r.get("agreement") is not None else "-"
            lines.append(f"| {r['tool']} | {'on' if r['tta'] else 'off'} | {r['cases']} | {r['steady']:.3f} | "
                         f"{r['whole']:.3f} | {r['matmul_gflops']:.0f} | {r['floor']:.3f} | "
                         f"{r['x_floor_steady']:.2f} | {r['x_floor_whole']:.2f} | {agree} | {r['load']} |")
        lines.append("")
    net = state.get("network")
    if net:
        lines += ["## Network alone (batch of 8 tiles)", "", "| runner | s per 8 tiles | GFLOP/s | load |",
                  "|---|---|---|---|"]
        for r in net:  # type: ignore[union-attr]
            if "error" in r:
                lines.append(f"| {r['runner']} | failed: {r['error']} | | |")
            else:
                lines.append(f"| {r['runner']} | {r['s_per_8_tiles']:.2f} | {r['gflops']:.1f} | {r['load']} |")
        lines.append("")
    dice = state.get("precision_dice")
    if isinstance(dice, dict):
        base = dice["dice"]["torch float32"]
        lines += ["## Reduced-precision opt-ins: validation Dice", "",
                  f"{dice['validation_cases']} validation cases of fold 0; int8 calibrated on "
                  f"{dice['calibration_cases']} training images (load {dice['load']}). Limit: within 0.005 of "
                  "float32.", "", "| model | mean foreground Dice | difference to torch float32 |", "|---|---|---|"]
        for name, value in dice["dice"].items():
            lines.append(f"| {name} | {value:.4f} | {value - base:+.4f} |")
        lines.append("")
    report = Path(str(state.get("report", RESULTS)))
    report.parent.mkdir(parents=True, exist_ok=True)
    report.write_text("\n".join(lines), encoding="utf-8")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("/tmp/autounet_deploy_bench"))
    parser.add_argument("--cases", type=int, default=52)
    parser.add_argument("--warmup-cases", type=int, default=5,
                        help="cases completed before the steady-state clock starts")
    parser.add_argument("--tta-cases", type=int, default=None,
                        help="cases for the runs with mirroring (default --cases; fewer on a loaded machine)")
    parser.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--tools", default="torch,onnxruntime,reference")
    parser.add_argument("--mirroring", default="off,on")
    parser.add_argument("--int8", action="store_true", help="also time an int8 model of the random-weight network")
    parser.add_argument("--compile", action="store_true", help="also time torch.compile on the network")
    parser.add_argument("--skip-commands", action="store_true")
    parser.add_argument("--onnx-file", action="store_true",
                        help="onnxruntime / openvino predict from an .onnx file exported once beforehand (the deployed "
                             "form) instead of converting the model folder at start-up")
    parser.add_argument("--report", type=Path, default=RESULTS, help="Markdown report to write")
    parser.add_argument("--skip-network", action="store_true", help="no network-alone table")
    parser.add_argument("--trained", type=Path, default=None,
                        help="a trained model folder for the bf16 / int8 Dice check")
    parser.add_argument("--splits", type=Path, default=None, help="splits_final.json of the trained model")
    parser.add_argument("--dice-cases", type=int, default=20)
    parser.add_argument("--settle-load", type=float, default=None, metavar="L",
                        help="before each timed command, wait (up to 4 min) for a 1-minute load average under L")
    args = parser.parse_args()

    import torch

    args.root.mkdir(parents=True, exist_ok=True)
    state: dict[str, object] = {"started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "cases": args.cases,
                                "warmup": args.warmup_cases, "threads": args.threads, "rows": [],
                                "report": str(args.report)}
    model_dir = setup(args.root)
    inputs = test_cases(args.root, args.cases)
    warm = test_cases(args.root, max(2, args.warmup_cases))
    tta_cases = args.tta_cases or args.cases
    tta_inputs = test_cases(args.root, tta_cases)

    settle(args.settle_load)
    print(f"floor (load {_load()}) ...", flush=True)
    tile_flops, tiles = case_flops(model_dir, inputs)
    rate = matmul_gflops(args.threads)
    per_case = tile_flops * float(np.mean(tiles))
    from autounet.inference.model import load_model

    patch = load_model(model_dir, folds=(0,), device=torch.device("cpu")).configuration.patch_size
    floor = {"tile_gflop": tile_flops / 1e9, "patch": "x".join(map(str, patch)), "mean_tiles": float(np.mean(tiles)),
             "matmul_gflops": rate, "torch2048_gflops": matmul_gflops(args.threads, sizes=(2048,), repeats=8,
                                                                      libraries=("torch",)), "floor_notta": per_case / (rate * 1e9), "floor_tta": 8 * per_case / (rate * 1e9),
             "load": _load()}
    state["floor"] = floor
    print(json.dumps(floor), flush=True)
    write_report(state)

    onnx_file = None
    if args.onnx_file:
        from autounet.inference.onnx import export_onnx

        start = time.perf_counter()
        onnx_file = export_onnx(model_dir, args.root / "model.onnx", folds=(0,))
        state["onnx_export_seconds"] = time.perf_counter() - start
        print(f"exported {onnx_file} in {state['onnx_export_seconds']:.1f} s", flush=True)
    if not args.skip_commands:
        env_ref = reference_env(args.root, threads=args.threads)
        env_ours = _ours_env(args.threads)
        for tta in [m == "on" for m in args.mirroring.split(",")]:
            n_cases, full_inputs = (tta_cases, tta_inputs) if tta else (args.cases, inputs)
            outputs: dict[str, Path] = {}
            for tool in args.tools.split(","):
                env = env_ref if tool == "reference" else env_ours
                settle(args.settle_load)
                rate_before = matmul_gflops(args.threads)
                load = _load()
                out = args.root / f"out_{tool}_{'tta' if tta else 'notta'}"
                shutil.rmtree(out, ignore_errors=True)
                try:
                    elapsed = _run(_command(tool, model_dir, full_inputs, out, tta=tta, threads=args.threads,
                                            onnx_file=onnx_file), env)
                except Exception as exc:  # noqa: BLE001 - record and go on with the other tools
                    print(f"  {tool} failed: {exc}", flush=True)
                    continue
                outputs[tool] = out
                row_rate = max(rate_before, matmul_gflops(args.threads))  # the stricter of before and after
                floor_s = (8 if tta else 1) * per_case / (row_rate * 1e9)
                steady = _steady(out, skip=args.warmup_cases)
                whole = elapsed / n_cases
                agreement = _agreement(outputs["torch"], out)[0] if "torch" in outputs else None
                row = {"tool": tool, "tta": tta, "cases": n_cases, "steady": steady, "whole": whole,
                       "matmul_gflops": row_rate, "floor": floor_s, "x_floor_steady": steady / floor_s, "x_floor_whole": whole / floor_s, "agreement": agreement,
                       "load": f"{load} -> {_load()}"}
                state["rows"].append(row)  # type: ignore[union-attr]
                print(f"  {tool} mirroring {'on' if tta else 'off'}: steady {steady:.3f} s/case, whole {whole:.3f} "
                      f"s/case ({steady / floor_s:.2f}x / {whole / floor_s:.2f}x floor), agreement {agreement}, "
                      f"load {row['load']}", flush=True)
                write_report(state)
    int8_path = None
    if args.int8 and not args.skip_network:
        from autounet.inference.onnx import (
            calibration_tiles,
            export_onnx,
            quantize_int8,
        )

        fp32 = export_onnx(model_dir, args.root / "random.onnx", folds=(0,))
        calib = [[f] for f in sorted(warm.glob("*_0000.nii.gz"))]
        int8_path = quantize_int8(fp32, args.root / "random.int8.onnx", calibration_tiles(fp32, calib))
    if not args.skip_network:
        print(f"network alone (load {_load()}) ...", flush=True)
        state["network"] = network_table(model_dir, tile_flops, args.threads, int8=int8_path,
                                         compile_=args.compile)
        write_report(state)

    if args.trained is not None:
        print(f"reduced-precision validation Dice (load {_load()}) ...", flush=True)
        state["precision_dice"] = precision_dice(args.trained, args.root, n_cases=args.dice_cases, n_calibration=16,
                                                 threads=args.threads, splits=args.splits)
        write_report(state)
    print(args.report.read_text(encoding="utf-8"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
