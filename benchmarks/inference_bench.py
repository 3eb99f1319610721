"""Inference benchmark: ``nnUNetv2_predict`` (reference 2.8.1) vs ``autounet predict`` with identical weights.

What it does (everything under ``--root``, default ``/tmp/autounet_inference_bench``):

1. A raw ``Dataset004_Hippocampus`` (symlinks to ``../shared/datasets/Hippocampus``), planned by the reference
   (``nnUNetv2_extract_fingerprint`` + ``nnUNetv2_plan_experiment``).
2. A reference model folder ``nnUNetTrainer__nnUNetPlans__3d_fullres/fold_0/checkpoint_final.pth`` with randomly
   initialised weights, made in the reference's venv with its own network builder (``get_network_from_plans``) and
   checkpoint layout. Both tools predict from this same folder (autounet imports the reference plans and renames
   the weights), so they run the same network with the same weights.
3. ``--cases`` Hippocampus images predicted by both, fold 0, on the CPU, with and without mirroring; each command
   is a fresh process (start-up included), the two tools alternate so that they share the machine's load. Prints
   seconds per case, the ratio, and the voxel agreement of the two segmentations.
4. Peak RSS on a synthetic large volume (``--large``, default ``512x512x600``) with ``--no-tta``: the full
   ``autounet predict`` run is sampled (``VmHWM``) and stopped after ``--large-timeout`` seconds if unfinished; the
   export stage (random logits of the full volume → resample/segment/uncrop → NIfTI) is measured separately.

Usage: ``python benchmarks/inference_bench.py [--cases 10] [--skip-timing] [--skip-large]``.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from reference import reference_env, reference_python, run_reference, run_reference_python  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
HIPPO = REPO.parent / "shared" / "datasets" / "Hippocampus"
DATASET = "Dataset004_Hippocampus"
MODEL = "nnUNetTrainer__nnUNetPlans__3d_fullres"
OURS = [str(REPO / ".venv" / "bin" / "python"), "-m", "autounet"]

MAKE_REFERENCE_MODEL = r"""
import json, os, shutil, torch
from nnunetv2.utilities.plans_handling.plans_handler import PlansManager
from nnunetv2.utilities.get_network_from_plans import get_network_from_plans
pre = os.path.join(os.environ['nnUNet_preprocessed'], '{ds}')
out = os.path.join(os.environ['nnUNet_results'], '{ds}', '{model}')
plans = json.load(open(os.path.join(pre, 'nnUNetPlans.json')))
ds = json.load(open(os.path.join(pre, 'dataset.json')))
cm = PlansManager(plans).get_configuration('3d_fullres')
torch.manual_seed({seed})
net = get_network_from_plans(cm.network_arch_class_name, cm.network_arch_init_kwargs,
                             cm.network_arch_init_kwargs_req_import, 1, 3, allow_init=True, deep_supervision=True)
os.makedirs(os.path.join(out, 'fold_0'), exist_ok=True)
torch.save({{'network_weights': net.state_dict(), 'optimizer_state': None, 'grad_scaler_state': None,
            'logging': {{}}, '_best_ema': None, 'current_epoch': 0,
            'init_args': {{'plans': plans, 'configuration': '3d_fullres', 'fold': 0, 'dataset_json': ds,
                          'device': 'cpu'}},
            'trainer_name': 'nnUNetTrainer', 'inference_allowed_mirroring_axes': (0, 1, 2)}},
           os.path.join(out, 'fold_0', 'checkpoint_final.pth'))
shutil.copy(os.path.join(pre, 'nnUNetPlans.json'), os.path.join(out, 'plans.json'))
shutil.copy(os.path.join(pre, 'dataset.json'), os.path.join(out, 'dataset.json'))
print(sum(p.numel() for p in net.parameters()))
"""


def _cases() -> list[str]:
    return sorted(p.name[: -len(".nii.gz")] for p in (HIPPO / "labels").iterdir()
                  if (HIPPO / "images" / p.name).is_file())


def setup(root: Path, *, seed: int = 0) -> Path:
    """Raw dataset, reference plans and the random-weight reference model folder (cached in ``root``)."""
    model_dir = root / "results" / DATASET / MODEL
    if (model_dir / "fold_0" / "checkpoint_final.pth").is_file():
        return model_dir
    raw = root / "raw" / DATASET
    for sub in ("imagesTr", "labelsTr"):
        (raw / sub).mkdir(parents=True, exist_ok=True)
    cases = _cases()
    for case in cases:
        for src, dst in ((HIPPO / "images" / f"{case}.nii.gz", raw / "imagesTr" / f"{case}_0000.nii.gz"),
                         (HIPPO / "labels" / f"{case}.nii.gz", raw / "labelsTr" / f"{case}.nii.gz")):
            if not dst.exists():
                dst.symlink_to(src)
    (raw / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "MRI"}, "labels": {"background": 0, "Anterior": 1, "Posterior": 2},
        "numTraining": len(cases), "file_ending": ".nii.gz"}, indent=2))
    run_reference(["nnUNetv2_extract_fingerprint", "-d", "4", "-np", "2"], root, threads=2)
    run_reference(["nnUNetv2_plan_experiment", "-d", "4"], root, threads=2)
    n_params = run_reference_python(MAKE_REFERENCE_MODEL.format(ds=DATASET, model=MODEL, seed=seed), root)
    print(f"reference model with random weights: {n_params.strip()} parameters -> {model_dir}", flush=True)
    return model_dir


def test_cases(root: Path, n: int) -> Path:
    """``n`` Hippocampus images (the last ones in id order) in dataset format."""
    folder = root / f"test_{n}"
    folder.mkdir(parents=True, exist_ok=True)
    for case in _cases()[-n:]:
        dst = folder / f"{case}_0000.nii.gz"
        if not dst.exists():
            dst.symlink_to(HIPPO / "images" / f"{case}.nii.gz")
    return folder


def _timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall seconds and CPU seconds (user + system, the command and every process it waited for)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, encoding="utf-8", errors="replace")
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed ({proc.returncode}):\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def _agreement(a: Path, b: Path) -> tuple[float, dict[int, int]]:
    import SimpleITK as sitk

    equal = total = 0
    counts: dict[int, int] = {}
    for f in sorted(a.glob("*.nii.gz")):
        x = sitk.GetArrayFromImage(sitk.ReadImage(str(f)))
        y = sitk.GetArrayFromImage(sitk.ReadImage(str(b / f.name)))
        equal += int((x == y).sum())
        total += x.size
        for v, c in zip(*np.unique(y, return_counts=True)):
            counts[int(v)] = counts.get(int(v), 0) + int(c)
    return equal / max(total, 1), counts


def timing(root: Path, model_dir: Path, n: int, *, repeats: int) -> list[dict[str, object]]:
    """Seconds per case of both tools with and without mirroring (alternating runs, best of ``repeats``)."""
    inputs = test_cases(root, n)
    env_ref = reference_env(root)
    env_ours = dict(os.environ)
    rows = []
    for tta in (True, False):
        tag = "tta" if tta else "notta"
        ref_cmd = [str(reference_python().parent / "nnUNetv2_predict"), "-i", str(inputs), "-d", "4", "-c",
                   "3d_fullres", "-f", "0", "-device", "cpu"] + ([] if tta else ["--disable_tta"])
        ours_cmd = [*OURS, "predict", "--quiet", "-m", str(model_dir), "-i", str(inputs), "-f", "0",
                    "--device", "cpu", "--overwrite"] + ([] if tta else ["--no-tta"])
        ref_times, our_times = [], []
        for r in range(repeats):
            ref_out, our_out = root / f"ref_{tag}", root / f"ours_{tag}"
            for d in (ref_out, our_out):
                shutil.rmtree(d, ignore_errors=True)
            ref_times.append(_timed([*ref_cmd, "-o", str(ref_out)], env_ref))
            our_times.append(_timed([*ours_cmd, "-o", str(our_out)], env_ours))
            print(f"  {tag} run {r + 1}: reference {ref_times[-1][0]:.1f} s ({ref_times[-1][1]:.1f} CPU s), "
                  f"autounet {our_times[-1][0]:.1f} s ({our_times[-1][1]:.1f} CPU s)", flush=True)
        agree, counts = _agreement(ref_out, our_out)
        ref_s, our_s = min(t[0] for t in ref_times) / n, min(t[0] for t in our_times) / n
        ref_cpu, our_cpu = min(t[1] for t in ref_times) / n, min(t[1] for t in our_times) / n
        rows.append({"mirroring": tta, "cases": n, "reference_s_per_case": ref_s, "autounet_s_per_case": our_s,
                     "ratio": our_s / ref_s, "reference_cpu_s_per_case": ref_cpu, "autounet_cpu_s_per_case": our_cpu,
                     "cpu_ratio": our_cpu / ref_cpu, "voxel_agreement": agree, "label_counts_reference": counts})
    return rows


REFERENCE_LOGITS = r"""
import numpy as np, torch
from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor
from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO
p = nnUNetPredictor(device=torch.device('cpu'), use_mirroring=False, allow_tqdm=False)
p.initialize_from_trained_model_folder({model!r}, (0,))
img, props = SimpleITKIO().read_images([{image!r}])
data, _, _ = p.configuration_manager.preprocessor_class().run_case_npy(
    img, None, props, p.plans_manager, p.configuration_manager, p.dataset_json)
np.save({out_data!r}, data)
np.save({out_logits!r}, p.predict_logits_from_preprocessed_data(torch.from_numpy(data)).float().numpy())
"""


def fp16_check(root: Path, model_dir: Path, n: int) -> list[dict[str, object]]:
    """Where do the two segmentations differ, and why? Per case (no mirroring, preprocessed space): voxels whose
    argmax differs between the reference's logits and ours, and between the reference's and ours accumulated the
    reference's way (float16 buffers and float16 Gaussian), which isolates the effect of the float16 accumulation."""
    import torch

    from autounet import sliding_window
    from autounet.inference import Predictor
    from autounet.inference.sliding import pad_to_patch

    pred = Predictor.from_model_dir(model_dir, folds=[0], device="cpu", use_mirroring=False)
    patch = pred.model.configuration.patch_size
    g16 = torch.from_numpy(np.array(sliding_window.gaussian_importance_map(patch))).half()
    g16[g16 == 0] = g16[g16 > 0].min()  # the reference's zero replacement, after its float16 cast
    rows = []
    for case in _cases()[-n:]:
        data_f, logits_f = root / "ref_data.npy", root / "ref_logits.npy"
        image = HIPPO / "images" / f"{case}.nii.gz"
        run_reference_python(REFERENCE_LOGITS.format(model=str(model_dir), image=str(image), out_data=str(data_f),
                                                     out_logits=str(logits_f)), root)
        data, ref = np.load(data_f), np.load(logits_f)
        ours = pred.predict_logits(data).numpy()
        padded, revert = pad_to_patch(torch.from_numpy(data), patch)
        if padded.shape[1:] != tuple(patch):
            continue  # the emulation below is written for single-tile cases
        with torch.inference_mode():
            raw = pred.model.networks[0](padded[None])[0]
        acc = torch.zeros(raw.shape, dtype=torch.half)
        acc += raw * g16
        emulated = (acc / g16)[(slice(None), *revert)].float().numpy()
        rows.append({"case": case, "voxels": int(ref[0].size),
                     "differ_ours_vs_reference": int((ours.argmax(0) != ref.argmax(0)).sum()),
                     "differ_fp16_emulation_vs_reference": int((emulated.argmax(0) != ref.argmax(0)).sum())})
    return rows


NETWORK_SPEED = r"""
import sys, time, torch
torch.set_num_threads(1)
{load}
x = torch.randn(1, 1, *{patch})
with torch.inference_mode():
    net(x)
    start = time.process_time()
    for _ in range({n}):
        net(x)
print((time.process_time() - start) / {n})
"""
LOAD_REFERENCE_NET = (
    "from nnunetv2.inference.predict_from_raw_data import nnUNetPredictor\n"
    "p = nnUNetPredictor(device=torch.device('cpu'), use_mirroring=False, allow_tqdm=False)\n"
    "p.initialize_from_trained_model_folder({model!r}, (0,))\nnet = p.network.eval()")
LOAD_OUR_NET = (
    "from autounet.inference.model import load_model\n"
    "net = load_model({model!r}, folds=[0], device=torch.device('cpu')).networks[0]")


def network_speed(root: Path, model_dir: Path, *, n: int = 5) -> dict[str, float]:
    """CPU seconds of one forward pass of one tile, single-threaded: the same weights in both implementations."""
    import json as _json

    patch = _json.loads((model_dir / "plans.json").read_text(encoding="utf-8"))["configurations"]["3d_fullres"]["patch_size"]
    ref = run_reference_python(NETWORK_SPEED.format(load=LOAD_REFERENCE_NET.format(model=str(model_dir)),
                                                    patch=tuple(patch), n=n), root)
    ours = subprocess.run([str(REPO / ".venv" / "bin" / "python"), "-c",
                           NETWORK_SPEED.format(load=LOAD_OUR_NET.format(model=str(model_dir)), patch=tuple(patch),
                                                n=n)], capture_output=True, text=True, encoding="utf-8", errors="replace", check=True).stdout
    return {"reference_cpu_s": float(ref.split()[-1]), "autounet_cpu_s": float(ours.split()[-1])}


def _poll_peak(proc: subprocess.Popen[bytes], timeout: float) -> tuple[float, bool, float]:
    """Peak resident memory (GiB) of ``proc`` (VmHWM), whether it finished, and its run time."""
    start = time.perf_counter()
    peak_kb = 0
    finished = False
    while True:
        try:
            for line in Path(f"/proc/{proc.pid}/status").read_text(encoding="utf-8").splitlines():
                if line.startswith("VmHWM:"):
                    peak_kb = max(peak_kb, int(line.split()[1]))
        except (FileNotFoundError, ProcessLookupError):
            pass
        if proc.poll() is not None:
            finished = proc.returncode == 0
            break
        if time.perf_counter() - start > timeout:
            proc.terminate()
            proc.wait()
            break
        time.sleep(0.5)
    return peak_kb / 2**20, finished, time.perf_counter() - start


def large_volume(root: Path, model_dir: Path, shape: tuple[int, int, int], timeout: float) -> dict[str, object]:
    """Peak RSS of ``autounet predict --no-tta`` on a synthetic volume, and of the export stage alone."""
    import SimpleITK as sitk

    folder = root / f"large_{'x'.join(map(str, shape))}"
    image = folder / "big_0000.nii.gz"
    if not image.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        rng = np.random.default_rng(0)
        z = np.linspace(-1, 1, shape[0])[:, None, None]
        y = np.linspace(-1, 1, shape[1])[None, :, None]
        x = np.linspace(-1, 1, shape[2])[None, None, :]
        vol = (60 + 40 * np.cos(6 * x) * np.sin(5 * y) + 30 * z).astype(np.float32)
        vol += rng.normal(0, 10, shape).astype(np.float32)
        img = sitk.GetImageFromArray(np.clip(vol, 0, 255).astype(np.uint8))
        img.SetOrigin((-100.0, 20.0, 5.0))
        sitk.WriteImage(img, str(image), True)
    out = root / "large_out"
    shutil.rmtree(out, ignore_errors=True)
    cmd = [*OURS, "predict", "--quiet", "-m", str(model_dir), "-i", str(folder), "-o", str(out), "-f", "0",
           "--device", "cpu", "--no-tta"]
    peak, finished, seconds = _poll_peak(subprocess.Popen(cmd, stdout=subprocess.DEVNULL,
                                                          stderr=subprocess.DEVNULL), timeout)
    code = EXPORT_ONLY.format(shape=tuple(shape), out=str(root / "export_only.nii.gz"))
    export_cmd = [str(REPO / ".venv" / "bin" / "python"), "-c", code]
    export_peak, export_ok, export_s = _poll_peak(subprocess.Popen(export_cmd), 1800)
    return {"shape": list(shape), "predict_peak_rss_gib": peak, "predict_finished": finished,
            "predict_seconds": seconds, "export_peak_rss_gib": export_peak, "export_finished": export_ok,
            "export_seconds": export_s}


EXPORT_ONLY = r"""
import numpy as np, torch
from autounet.inference.export import CaseGeometry, export_logits
from autounet.io import ImageGeometry, write_segmentation
from autounet.labels import LabelSpec
shape = {shape}
logits = torch.randn((3, *shape), dtype=torch.float32)
case = CaseGeometry(shape_before_cropping=shape, bbox=tuple((0, s) for s in shape), shape_after_cropping=shape,
                    spacing=(1.0, 1.0, 1.0), transpose_forward=(0, 1, 2), transpose_backward=(0, 1, 2))
labels = LabelSpec.from_labels({{"background": 0, "a": 1, "b": 2}})
res = export_logits(logits, case, config_spacing=(1.0, 1.0, 1.0), labels=labels)
del logits
write_segmentation(res.segmentation, {out!r}, ImageGeometry(spacing=(1.0, 1.0, 1.0)))
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=Path("/tmp/autounet_inference_bench"))
    parser.add_argument("--cases", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=1)
    parser.add_argument("--large", default="600x512x512", help="z x y x x (array shape) of the synthetic volume")
    parser.add_argument("--large-timeout", type=float, default=600.0)
    parser.add_argument("--skip-timing", action="store_true")
    parser.add_argument("--skip-large", action="store_true")
    parser.add_argument("--network", action="store_true", help="also time one forward pass of each network")
    parser.add_argument("--fp16-check", type=int, default=3, metavar="N",
                        help="explain the disagreements on N single-tile cases (0: skip)")
    args = parser.parse_args()
    model_dir = setup(args.root)
    results: dict[str, object] = {"machine": f"{os.cpu_count()} CPU cores, no GPU"}
    if not args.skip_timing:
        rows = timing(args.root, model_dir, args.cases, repeats=args.repeats)
        results["timing"] = rows
        print("\n| mirroring | cases | reference s/case | autounet s/case | ratio | reference CPU s/case | "
              "autounet CPU s/case | CPU ratio | voxel agreement |")
        print("|---|---|---|---|---|---|---|---|---|")
        for r in rows:
            print(f"| {'on' if r['mirroring'] else 'off'} | {r['cases']} | {r['reference_s_per_case']:.2f} | "
                  f"{r['autounet_s_per_case']:.2f} | {r['ratio']:.3f} | {r['reference_cpu_s_per_case']:.2f} | "
                  f"{r['autounet_cpu_s_per_case']:.2f} | {r['cpu_ratio']:.3f} | {100 * r['voxel_agreement']:.4f} % |")
    if args.network:
        speed = network_speed(args.root, model_dir)
        results["network_forward"] = speed
        print(f"\none forward pass (1 tile, 1 thread, CPU s): reference {speed['reference_cpu_s']:.3f}, "
              f"autounet {speed['autounet_cpu_s']:.3f}")
    if args.fp16_check:
        rows = fp16_check(args.root, model_dir, args.fp16_check)
        results["fp16_check"] = rows
        print("\n| case | voxels | argmax differs: ours vs reference | our network + reference's fp16 accumulation vs "
              "reference |\n|---|---|---|---|")
        for r in rows:
            print(f"| {r['case']} | {r['voxels']} | {r['differ_ours_vs_reference']} | "
                  f"{r['differ_fp16_emulation_vs_reference']} |")
    if not args.skip_large:
        shape = tuple(int(s) for s in args.large.split("x"))
        big = large_volume(args.root, model_dir, shape, args.large_timeout)  # type: ignore[arg-type]
        results["large"] = big
        print(f"\nlarge volume {args.large}: predict peak RSS {big['predict_peak_rss_gib']:.2f} GiB "
              f"({'finished' if big['predict_finished'] else 'stopped'} after {big['predict_seconds']:.0f} s); "
              f"export stage alone peak RSS {big['export_peak_rss_gib']:.2f} GiB in {big['export_seconds']:.0f} s")
    (args.root / "results.json").write_text(json.dumps(results, indent=2))
    print(f"\nresults: {args.root / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
