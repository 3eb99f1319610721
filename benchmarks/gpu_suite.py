"""The GPU suite: training, data-wait, augmentation and inference figures on CUDA, plus the GPU tests, in one command.

Made for a lent GPU machine that has PyTorch but none of autounet's other dependencies and no network. Prepare here,
run there::

    # here (network): the few wheels autounet's GPU paths import, for the GPU machine's Python (3.12, x86-64)
    python benchmarks/gpu_suite.py prepare --wheels .whl
    # there (one command, <= 8 minutes): install the wheels, run the suite, then the GPU tests
    python3 -m pip install -q --no-index --no-deps --target /tmp/site .whl/*.whl && \\
        PYTHONPATH=/tmp/site:src python3 benchmarks/gpu_suite.py run --device cuda --out $OUT/gpu_suite.json --tests

``run --device cpu --smoke`` is the CPU smoke run that the normal test suite executes (tiny shapes, one timed
iteration). Every measurement uses synthetic data of the real shapes (Hippocampus 3d_fullres and 2d from the
reference's own plans committed with the planning goldens; a CT-shaped 3d_fullres plan with patch 128³, batch 2;
a 512×512×400 CT volume for inference), since image files do not travel to the GPU machine.

Measured per shape: training iterations/s (fp32, AMP bf16, AMP fp16 with a grad scaler, bf16 + channels-last,
bf16 + ``torch.compile``), the share of each step spent waiting for data with 2 loader threads and augmentation
on the GPU, augmentation batches/s on the GPU, sliding-window seconds per case with mirroring, and peak GPU memory
of each. The reference's data loader is measured when its packages are importable there (``nnunetv2``); otherwise
the table says it could not travel. Prints one table and writes JSON.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
GOLDEN_PLANS = REPO / "tests" / "data" / "golden" / "planning" / "Dataset004_Hippocampus" / "nnUNetPlans.json"
# Imported by autounet's GPU paths but absent from the GPU image (see /work/.library/device/KINDS.md);
# pydantic for the typed records.
WHEELS = ("connected-components-3d", "pydantic", "pydantic-core", "annotated-types", "typing-inspection")
NUM_OUTPUTS = 3  # background + two structures, as Hippocampus


@dataclass(frozen=True)
class Shape:
    """One measured configuration: network topology, patch, batch and the inference case size."""

    name: str
    network: Any  # autounet NetworkSpec
    patch: tuple[int, ...]
    batch: int
    case: tuple[int, ...]  # preprocessed case size used for the loader store
    inference_case: tuple[int, ...]  # preprocessed size of the case predicted by sliding window


def _hippocampus_shapes(smoke: bool) -> list[Shape]:
    from autounet.planning.reference import import_plans

    plans = import_plans(json.loads(GOLDEN_PLANS.read_text(encoding="utf-8")))
    out = []
    for config in ("3d_fullres", "2d"):
        plan = plans.configuration(config)
        patch = tuple(int(p) for p in plan.patch_size)
        batch, network, case = int(plan.batch_size), plan.network, (36, 50, 35)
        if smoke:  # a small network and patch: the smoke run checks the code paths, not the figures
            batch, network, patch = 2, _shrunk(network), (16, 24, 16) if len(patch) == 3 else patch
        out.append(Shape(f"hippocampus_{config}", network, patch, batch, case, (20, 40, 30) if smoke else case))
    return out


def _shrunk(spec: Any, stages: int = 3, width: int = 8) -> Any:
    """The first ``stages`` stages of a topology with ``width`` features per stage (CPU smoke runs)."""
    from autounet.schemas.plans import NetworkSpec

    return NetworkSpec(name=spec.name, features_per_stage=(width,) * stages,
                       kernel_sizes=tuple(spec.kernel_sizes[:stages]), strides=tuple(spec.strides[:stages]),
                       blocks_per_stage=tuple(spec.blocks_per_stage[:stages]),
                       convs_per_stage_decoder=tuple(spec.convs_per_stage_decoder[:stages - 1]))


def _ct_shape(smoke: bool) -> Shape:
    from autounet.schemas.plans import NetworkSpec

    stages = 3 if smoke else 6
    feats = (8,) * stages if smoke else tuple(min(32 * 2 ** i, 320) for i in range(stages))
    spec = NetworkSpec(name="plain_unet", features_per_stage=feats, kernel_sizes=((3, 3, 3),) * stages,
                       strides=((1, 1, 1),) + ((2, 2, 2),) * (stages - 1), blocks_per_stage=(2,) * stages,
                       convs_per_stage_decoder=(2,) * (stages - 1))
    if smoke:
        return Shape("ct_3d_fullres", spec, (32, 32, 32), 1, (48, 48, 48), (40, 48, 44))
    return Shape("ct_3d_fullres", spec, (128, 128, 128), 2, (160, 224, 224), (400, 512, 512))


# ---- synthetic data ------------------------------------------------------------------------------------------------

def _synthetic_case(shape: tuple[int, ...], seed: int) -> tuple[Any, Any]:
    """``(image (1, *shape) float32, seg (1, *shape) int16)``: two blobs of different contrast in noise."""
    import numpy as np

    rng = np.random.default_rng(seed)
    grid = np.stack(np.meshgrid(*[np.linspace(-1, 1, s, dtype=np.float32) for s in shape], indexing="ij"))
    seg = np.zeros(shape, dtype=np.int16)
    for label, centre in ((1, (-0.3,) * 3), (2, (0.35,) * 3)):
        seg[((grid - np.array(centre, np.float32).reshape(3, 1, 1, 1)) ** 2).sum(0) < 0.12] = label
    image = rng.normal(0, 0.5, shape).astype(np.float32) + seg.astype(np.float32)
    return image[None], seg[None]


class SyntheticStore:
    """An in-memory case store with the ``PatchStore`` shape the training loader reads."""

    def __init__(self, case_shape: tuple[int, ...], n_cases: int) -> None:
        import numpy as np

        self._cases = {f"case_{i:03d}": _synthetic_case(case_shape, i) for i in range(n_cases)}
        self._props = {}
        for key, (_, seg) in self._cases.items():
            locs = {}
            for label in (1, 2):
                where = np.argwhere(seg == label)
                locs[label] = where[:: max(1, len(where) // 1000)]
            self._props[key] = {"class_locations": locs, "shape_after_resampling": seg.shape[1:]}

    def case_ids(self) -> list[str]:
        return sorted(self._cases)

    def properties(self, case: str) -> Any:
        return self._props[case]

    def open(self, case: str) -> tuple[Any, Any]:
        return self._cases[case]


# ---- measurements --------------------------------------------------------------------------------------------------

def _sync(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _reset_peak(device: Any) -> None:
    import torch

    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def _peak_gib(device: Any) -> float | None:
    import torch

    return torch.cuda.max_memory_allocated(device) / 2**30 if device.type == "cuda" else None


def _components(shape: Shape, device: Any, *, channels_last: bool = False) -> tuple[Any, Any, Any]:
    """Network, augmenter and Dice+CE deep-supervision loss of a shape, as training builds them."""
    from autounet import augmentation, networks
    from autounet.labels import LabelSpec
    from autounet.schemas.dataset import DatasetSpec
    from autounet.training import losses

    spec = DatasetSpec.from_dict({"channel_names": {"0": "MRI"}, "labels": {"background": 0, "a": 1, "b": 2},
                                  "numTraining": 1, "file_ending": ".nii.gz"})
    labels = LabelSpec.from_dataset_spec(spec)
    net = networks.build(shape.network, in_channels=1, num_outputs=NUM_OUTPUTS, deep_supervision=True,
                         channels_last=channels_last).to(device)
    aug = augmentation.build("default", patch_size=shape.patch, deep_supervision_strides=shape.network.strides)
    loss = losses.build_loss(labels, batch_dice=False, deep_supervision_scales=aug.deep_supervision_scales,
                             ddp=False, compiled=False)
    return net, aug, loss


def _fixed_batch(shape: Shape, aug: Any, device: Any) -> tuple[Any, Any]:
    import numpy as np
    import torch

    img, seg = _synthetic_case(tuple(max(p, c) for p, c in zip((1,) * (3 - len(shape.patch)) + shape.patch,
                                                                 shape.case)), 0)
    crop = tuple(slice(0, p) for p in aug.initial_patch_size)
    if len(shape.patch) == 2:
        crop = (slice(0, 1), *crop)
    x = torch.from_numpy(np.ascontiguousarray(img[(slice(None), *crop)])).to(device)
    y = torch.from_numpy(np.ascontiguousarray(seg[(slice(None), *crop)])).to(device)
    if len(shape.patch) == 2:
        x, y = x[:, 0], y[:, 0]
    return x.expand(shape.batch, *x.shape).contiguous(), y.expand(shape.batch, *y.shape).contiguous()


def measure_training(shape: Shape, device: Any, variant: str, *, iters: int, warmup: int) -> dict[str, Any]:
    """Iterations/s of a full training step (augmentation on the device + forward + loss + backward + SGD)."""
    import torch

    amp = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16, "bf16_channels_last": torch.bfloat16,
           "bf16_compile": torch.bfloat16}[variant]
    if device.type != "cuda" and amp is torch.float16:
        return {"skipped": "fp16 autocast is a CUDA path"}
    _reset_peak(device)
    net, aug, loss_fn = _components(shape, device, channels_last=variant.endswith("channels_last"))
    model = torch.compile(net) if variant.endswith("compile") else net
    opt = torch.optim.SGD(net.parameters(), lr=1e-2, momentum=0.99, nesterov=True, weight_decay=3e-5)
    scaler = torch.amp.GradScaler("cuda") if amp is torch.float16 else None
    x, y = _fixed_batch(shape, aug, device)
    gen = torch.Generator().manual_seed(0)

    def step() -> float:
        out = aug(x, y, generator=gen)
        opt.zero_grad(set_to_none=True)
        with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
            loss = loss_fn(model(out.image), out.target)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.unscale_(opt)
            torch.nn.utils.clip_grad_norm_(net.parameters(), 12)
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            torch.nn.utils.clip_grad_norm_(net.parameters(), 12)
            opt.step()
        return float(loss.detach())

    t_compile = time.perf_counter()
    for _ in range(warmup):
        step()
    _sync(device)
    t0 = time.perf_counter()
    losses = [step() for _ in range(iters)]
    _sync(device)
    seconds = (time.perf_counter() - t0) / iters
    return {"it_per_s": 1.0 / seconds, "s_per_it": seconds, "warmup_s": t0 - t_compile,
            "loss_finite": all(map(lambda v: v == v and abs(v) != float("inf"), losses)),
            "peak_gib": _peak_gib(device)}


def measure_data_wait(shape: Shape, device: Any, *, iters: int, workers: int = 2) -> dict[str, Any]:
    """Share of each bf16 training step spent blocked on the loader (``workers`` threads, augmentation on device)."""
    import torch

    from autounet.training.data import BatchLoader

    net, aug, loss_fn = _components(shape, device)
    opt = torch.optim.SGD(net.parameters(), lr=1e-2, momentum=0.99, nesterov=True)
    store = SyntheticStore(shape.case, 4)
    loader = BatchLoader(store, store.case_ids(), batch_size=shape.batch, patch_size=aug.initial_patch_size,
                         final_patch_size=shape.patch, oversample=0.33, seed=0, workers=workers, prefetch=4,
                         pin_memory=device.type == "cuda")
    amp = torch.bfloat16 if device.type == "cuda" else None
    gen = torch.Generator().manual_seed(0)
    waits, totals = [], []
    try:
        batches = loader.batches(0, 0, iters + 2)
        for i in range(iters + 2):
            t0 = time.perf_counter()
            batch = next(batches)
            x = torch.from_numpy(batch.data).to(device, non_blocking=True)
            y = torch.from_numpy(batch.seg).to(device, non_blocking=True)
            t1 = time.perf_counter()
            out = aug(x, y, generator=gen)
            opt.zero_grad(set_to_none=True)
            with torch.autocast(device.type, dtype=amp, enabled=amp is not None):
                loss = loss_fn(net(out.image), out.target)
            loss.backward()
            opt.step()
            _sync(device)
            if i >= 2:  # the first batches include the loader's start
                waits.append(t1 - t0)
                totals.append(time.perf_counter() - t0)
    finally:
        loader.close()
    return {"wait_share": sum(waits) / sum(totals), "s_per_it": sum(totals) / len(totals), "workers": workers}


def measure_augmentation(shape: Shape, device: Any, *, iters: int) -> dict[str, Any]:
    """Augmentation batches/s on the device (batch already on the device)."""
    import torch

    _reset_peak(device)
    _, aug, _ = _components(shape, device)
    x, y = _fixed_batch(shape, aug, device)
    gen = torch.Generator().manual_seed(0)
    aug(x, y, generator=gen)
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(iters):
        aug(x, y, generator=gen)
    _sync(device)
    seconds = (time.perf_counter() - t0) / iters
    return {"batches_per_s": 1.0 / seconds, "peak_gib": _peak_gib(device)}


def measure_inference(shape: Shape, device: Any, *, repeats: int) -> dict[str, Any]:
    """Sliding-window seconds per case with mirroring (all axes), bf16 on CUDA, on a case of ``inference_case``."""
    import torch

    from autounet.inference.sliding import SlidingWindowOptions, predict_sliding_window
    from autounet.networks import set_deep_supervision

    net, _, _ = _components(shape, device)
    set_deep_supervision(net, False)
    net.eval()
    image, _ = _synthetic_case(shape.inference_case, 1)
    axes = tuple(range(len(shape.patch)))
    options = SlidingWindowOptions(mirror_axes=axes, precision="bf16" if device.type == "cuda" else "fp32")
    data = torch.from_numpy(image)  # (1, z, y, x); a 2D network predicts it slice by slice along z
    _reset_peak(device)
    with torch.inference_mode():
        predict_sliding_window([net], data, patch_size=shape.patch, num_outputs=NUM_OUTPUTS, options=options,
                               device=device)
        _sync(device)
        t0 = time.perf_counter()
        for _ in range(repeats):
            out = predict_sliding_window([net], data, patch_size=shape.patch, num_outputs=NUM_OUTPUTS,
                                         options=options, device=device)
        _sync(device)
    return {"s_per_case": (time.perf_counter() - t0) / repeats, "case": list(shape.inference_case),
            "mirrors": 2 ** len(axes), "finite": bool(torch.isfinite(out).all()), "peak_gib": _peak_gib(device)}


def measure_reference_loader() -> dict[str, Any]:
    """The reference's loader throughput, where its packages travelled to this machine."""
    try:
        import nnunetv2  # noqa: F401
    except ImportError:
        return {"skipped": "not measured: nnunetv2 and its dependencies (SimpleITK alone is a 50 MB wheel) do not "
                           "fit the 64 MiB that travels to the GPU machine"}
    return {"skipped": "not measured: the reference's loader reads its own preprocessed folders, which do not travel"}


# ---- driver --------------------------------------------------------------------------------------------------------

VARIANTS = ("fp32", "bf16", "fp16", "bf16_channels_last", "bf16_compile")


def run_suite(*, device_name: str, smoke: bool, budget_s: float, log: Callable[[str], None]) -> dict[str, Any]:
    """Every measurement, in order of importance, skipping the rest once ``budget_s`` is spent."""
    import torch

    device = torch.device(device_name)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    start = time.perf_counter()
    iters, warmup = (1, 1) if smoke else (20, 5)
    shapes = [*_hippocampus_shapes(smoke), _ct_shape(smoke)]
    variants = ("fp32",) if smoke and device.type != "cuda" else VARIANTS
    results: dict[str, Any] = {"device": _device_name(device), "torch": torch.__version__, "smoke": smoke,
                               "python": platform.python_version(), "shapes": {}}
    plan: list[tuple[str, str, Callable[[], dict[str, Any]]]] = []
    for shape in shapes:
        for v in variants:
            plan.append((shape.name, f"train_{v}", lambda s=shape, v=v: measure_training(s, device, v, iters=iters,
                                                                                          warmup=warmup)))
        plan.append((shape.name, "data_wait", lambda s=shape: measure_data_wait(s, device, iters=max(2, iters))))
        plan.append((shape.name, "augmentation", lambda s=shape: measure_augmentation(s, device, iters=iters)))
        plan.append((shape.name, "inference", lambda s=shape: measure_inference(s, device, repeats=1)))
    for shape_name, what, fn in plan:
        if time.perf_counter() - start > budget_s:
            results["shapes"].setdefault(shape_name, {})[what] = {"skipped": "time budget spent"}
            continue
        t0 = time.perf_counter()
        try:
            value = fn()
        except Exception as exc:  # noqa: BLE001 -- one failed measurement must not lose the others
            value = {"error": f"{type(exc).__name__}: {exc}"[:300]}
        value["wall_s"] = round(time.perf_counter() - t0, 2)
        results["shapes"].setdefault(shape_name, {})[what] = value
        log(f"{shape_name:24s} {what:24s} {_cell(value)}")
        if device.type == "cuda":
            torch.cuda.empty_cache()
    results["reference_loader"] = measure_reference_loader()
    results["total_s"] = round(time.perf_counter() - start, 1)
    return results


def _device_name(device: Any) -> str:
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"cpu ({platform.processor() or platform.machine()})"


def _cell(value: dict[str, Any]) -> str:
    for key, fmt in (("it_per_s", "{:.2f} it/s"), ("batches_per_s", "{:.2f} batches/s"),
                     ("s_per_case", "{:.2f} s/case"), ("wait_share", "{:.1%} waiting")):
        if key in value:
            text = fmt.format(value[key])
            if value.get("peak_gib") is not None:
                text += f", peak {value['peak_gib']:.2f} GiB"
            return text
    return str(value.get("skipped") or value.get("error") or value)


def table(results: dict[str, Any]) -> str:
    """One Markdown table: a row per shape and measurement."""
    lines = [f"device: {results['device']}, torch {results['torch']}, smoke={results['smoke']}", "",
             "| shape | measurement | result |", "|---|---|---|"]
    for shape, items in results["shapes"].items():
        for what, value in items.items():
            lines.append(f"| {shape} | {what} | {_cell(value)} |")
    lines.append(f"| reference | data loader | {_cell(results['reference_loader'])} |")
    return "\n".join(lines)


def prepare(wheels: Path) -> int:
    """Download the wheels the GPU machine lacks (CPython 3.12, manylinux x86-64) into ``wheels``."""
    wheels.mkdir(parents=True, exist_ok=True)
    platforms = [f"--platform=manylinux_2_{n}_x86_64" for n in (17, 27, 28)] + ["--platform=manylinux2014_x86_64"]
    from importlib.metadata import PackageNotFoundError, version

    pins = []
    for name in WHEELS:  # the versions installed here, which are known to work together (pydantic pins its core)
        try:
            pins.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            pins.append(name)
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--python-version=3.12",
           "--implementation=cp", *platforms, "-d", str(wheels), *pins]
    return subprocess.call(cmd)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("prepare", help="download the wheels the GPU machine lacks")
    p.add_argument("--wheels", type=Path, default=REPO / ".whl")
    r = sub.add_parser("run", help="run the suite")
    r.add_argument("--device", default="cuda")
    r.add_argument("--smoke", action="store_true", help="tiny shapes, one iteration (CPU smoke run)")
    r.add_argument("--budget-s", type=float, default=330.0, help="stop starting measurements after this")
    r.add_argument("--out", type=Path, default=None, help="write the results as JSON here")
    r.add_argument("--tests", action="store_true", help="then run the GPU tests (pytest -m gpu tests/gpu)")
    args = parser.parse_args(argv)
    if args.command == "prepare":
        return prepare(args.wheels)
    sys.path.insert(0, str(REPO / "src"))
    results = run_suite(device_name=args.device, smoke=args.smoke, budget_s=args.budget_s,
                        log=lambda line: print(line, flush=True))
    print(table(results), flush=True)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=2), encoding="utf-8")
    if not args.tests:
        return 0
    cmd = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-m", "gpu",
           f"--test-device={args.device}", str(REPO / "tests" / "gpu")]
    return subprocess.call(cmd, cwd=REPO)


if __name__ == "__main__":
    sys.exit(main())
