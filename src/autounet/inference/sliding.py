"""Batched sliding-window prediction of one preprocessed case, with mirroring TTA and fold ensembling.

Same result as the reference (§7.2): tiles at the reference's positions (step 0.5 of the patch by default), a
Gaussian importance map (σ = patch/8), the average of the network's logits over every mirroring combination of
the allowed axes, the Gaussian-weighted average over tiles and the mean over folds. Unlike the reference:

- tiles (and their mirrored copies) go through the network in batches (``tile_batch``), chosen from free memory;
- the sums are accumulated in float32 on the results device (the reference uses float16, which overflows and
  loses precision); the network itself runs in bf16/fp16 autocast on CUDA, and in bf16 on CPUs with native bf16
  only when asked (``precision="bf16"``);
- every fold is run on a tile while it is on the device, and all folds share one accumulation buffer, so
  ensembling costs no extra full-volume arrays.

2D configurations predict every slice along axis 0 with 2D tiles over axes 1 and 2.

The code follows the array library of its device (:mod:`autounet.inference.arrays`): torch tensors for the torch
backend, NumPy arrays for ONNX Runtime and OpenVINO, which then run without torch.
"""

from __future__ import annotations

import contextlib
import itertools
import math
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
from array_api_compat import array_namespace
from array_api_compat import device as device_of

from autounet import sliding_window
from autounet._log import get_logger
from autounet.errors import UsageError
from autounet.inference.arrays import Device, as_array, device_type, is_host, move, namespace
from autounet.precision import check_precision_name

#: a network as the sliding window calls it: ``(B, C, *patch)`` array in, ``(B, K, *patch)`` logits out, both of
#: its device's array library (a torch ``nn.Module`` for the torch backend)
Network = Callable[[Any], Any]

log = get_logger(__name__)



@dataclass(frozen=True)
class SlidingWindowOptions:
    """How one case is tiled and predicted.

    Attributes:
        step: tile step as a fraction of the patch size (``0 < step <= 1``; the reference's default 0.5).
        mirror_axes: spatial axes of the *patch* to mirror for test-time augmentation (``()``: no TTA). For 2D
            configurations the axes refer to the two in-plane axes (0, 1).
        use_gaussian: weight tiles with the Gaussian importance map (otherwise a plain average).
        tile_batch: tiles (mirrored copies included) per network call; ``None`` chooses from free memory.
        precision: network precision: ``auto`` (bf16 on CUDA devices that support it, else fp16; fp32 on CPU),
            ``fp32``, ``bf16`` (CUDA, or CPUs with native bf16: about twice as fast there, an opt-in) or ``fp16``
            (CUDA only); see :mod:`autounet.networks.precision`.
        cpu_streams: on the CPU, network calls run in this many threads at once, each with its share of torch's
            threads (``None``: as many as torch has threads, at most 4; 1: one call at a time using all threads).
            Several single-threaded calls use small and mid-sized convolutions better than one multi-threaded call.
    """

    step: float = 0.5
    mirror_axes: tuple[int, ...] = ()
    use_gaussian: bool = True
    tile_batch: int | None = None
    precision: str = "auto"
    cpu_streams: int | None = None

    def __post_init__(self) -> None:
        if not 0 < self.step <= 1:
            msg = f"The tile step must be in (0, 1], got {self.step}."
            raise UsageError(msg)
        if self.tile_batch is not None and self.tile_batch < 1:
            msg = f"The tile batch must be >= 1, got {self.tile_batch}."
            raise UsageError(msg)
        if self.cpu_streams is not None and self.cpu_streams < 1:
            msg = f"cpu_streams must be >= 1, got {self.cpu_streams}."
            raise UsageError(msg)
        check_precision_name(self.precision)


def mirror_combinations(axes: Sequence[int]) -> tuple[tuple[int, ...], ...]:
    """The identity ``()`` followed by every non-empty subset of ``axes`` (8 passes for 3 axes, 4 for 2)."""
    axes = tuple(sorted(set(int(a) for a in axes)))
    subsets = [c for k in range(1, len(axes) + 1) for c in itertools.combinations(axes, k)]
    return ((), *subsets)


def pad_to_patch(data: Any, patch: Sequence[int]) -> tuple[Any, tuple[slice, ...]]:
    """Zero-pad the trailing ``len(patch)`` axes of ``(C, *spatial)`` up to ``patch``, centred (odd: extra at end).

    Returns the padded array (same library and device) and the spatial slices that remove the padding again.
    """
    spatial = tuple(int(s) for s in data.shape[1:])
    offset = len(spatial) - len(patch)
    amounts = [(0, 0)] * offset + sliding_window.pad_amounts(spatial[offset:], patch)
    revert = tuple(slice(b, b + s) for (b, _), s in zip(amounts, spatial))
    if not any(b or a for b, a in amounts):
        return data, revert
    xp = array_namespace(data)
    shape = (int(data.shape[0]), *(s + b + a for s, (b, a) in zip(spatial, amounts)))
    padded = xp.zeros(shape, dtype=data.dtype, device=device_of(data))
    padded[(slice(None), *revert)] = data
    return padded, revert


@dataclass(frozen=True)
class TileGrid:
    """Tile start corners over the 3 spatial axes of a (padded) case.

    ``patch3`` is the 3D extent of a tile; for 2D configurations its first entry is 1 and ``squeeze`` is True (the
    network sees ``(B, C, H, W)``).
    """

    starts: np.ndarray
    patch3: tuple[int, int, int]
    squeeze: bool

    def __len__(self) -> int:
        return int(self.starts.shape[0])

    def slices(self, i: int) -> tuple[slice, slice, slice]:
        """Spatial slices of tile ``i``."""
        return tuple(slice(int(s), int(s) + p) for s, p in zip(self.starts[i], self.patch3))  # type: ignore[return-value]


def tile_grid(shape: Sequence[int], patch: Sequence[int], step: float) -> TileGrid:
    """The reference's tiles for a padded spatial ``shape`` (3 axes) and a 2D or 3D ``patch``."""
    patch = tuple(int(p) for p in patch)
    if len(patch) == 3:
        per_axis = sliding_window.compute_steps(tuple(shape), patch, step)
        patch3 = patch
    elif len(patch) == 2:
        per_axis = [list(range(int(shape[0]))), *sliding_window.compute_steps(tuple(shape[1:]), patch, step)]
        patch3 = (1, *patch)
    else:
        msg = f"Patch size {patch} must have 2 or 3 entries."
        raise UsageError(msg)
    starts = np.array(list(itertools.product(*per_axis)), dtype=np.int64).reshape(-1, 3)
    return TileGrid(starts=starts, patch3=patch3, squeeze=len(patch) == 2)


def gaussian_weights(patch: Sequence[int], *, device: Device, use_gaussian: bool = True) -> Any:
    """The float32 importance map of one tile (all ones without Gaussian weighting), an array of ``device``."""
    shape = tuple(int(p) for p in patch)
    if not use_gaussian:
        return as_array(np.ones(shape, dtype=np.float32), device)
    g = np.array(sliding_window.gaussian_importance_map(shape), dtype=np.float32)  # a copy: the cache is read-only
    return as_array(g, device)


def _batches(n: int, size: int) -> Iterator[range]:
    for start in range(0, n, size):
        yield range(start, min(n, start + size))


class _Accumulator:
    """Float32 sums of Gaussian-weighted logits and of the weights, over a padded case."""

    def __init__(self, num_outputs: int, shape: Sequence[int], device: Device) -> None:
        xp = namespace(device)
        self.device = device
        self.logits = xp.zeros((num_outputs, *shape), dtype=xp.float32, device=device)
        self.weights = xp.zeros(tuple(shape), dtype=xp.float32, device=device)
        self.lock = threading.Lock()

    def add(self, grid: TileGrid, tiles: range, weighted: Any, gaussian: Any | None) -> None:
        """Add weighted tile logits ``(B, K, *patch3)`` (already multiplied by the Gaussian) at their positions,
        and the Gaussian into the weight sum unless ``gaussian`` is None (added once per tile)."""
        weighted = move(weighted, self.device)
        with self.lock:
            for j, i in enumerate(tiles):
                sl = grid.slices(i)
                self.logits[(slice(None), *sl)] += weighted[j]
                if gaussian is not None:
                    self.weights[sl] += gaussian

    def finish(self, n_folds: int) -> Any:
        """Weighted average over tiles and folds, in place."""
        self.weights *= float(n_folds)
        self.logits /= self.weights
        del self.weights
        return self.logits


def _gather_tiles(data: Any, grid: TileGrid, tiles: range, device: Device) -> Any:
    """Stack tiles ``(B, C, *patch)`` from the padded case onto the network's device."""
    xp = array_namespace(data)
    batch = move(xp.stack([data[(slice(None), *grid.slices(i))] for i in tiles]), device)
    return batch[:, :, 0] if grid.squeeze else batch


def _predict_mirrored(network: Network, tiles: Any, mirrors: Sequence[tuple[int, ...]], chunk: int,
                      autocast: Callable[[], contextlib.AbstractContextManager[Any]]) -> Any:
    """Sum of the network's float32 logits over ``mirrors`` (each flipped, predicted and flipped back)."""
    xp = array_namespace(tiles)
    n = int(tiles.shape[0])
    total: Any = None
    for group in _batches(len(mirrors), max(1, chunk // n)):
        flips = [tuple(a + 2 for a in mirrors[m]) for m in group]
        x = xp.concat([xp.flip(tiles, axis=f) if f else tiles for f in flips])
        with autocast():
            y = network(x)
        y = xp.astype(y, xp.float32, copy=False)
        for k, f in enumerate(flips):
            part = y[k * n:(k + 1) * n]
            part = xp.flip(part, axis=f) if f else part
            if total is None:
                total = part
            else:
                total += part
    return total


@dataclass(frozen=True)
class _Unit:
    """One network call site: some tiles, one fold, some mirror combinations; ``first`` adds the tile weights."""

    tiles: range
    network: int
    mirrors: tuple[int, ...]
    first: bool


def plan_units(n_tiles: int, n_networks: int, n_mirrors: int, *, chunk: int, streams: int = 1) -> list[_Unit]:
    """Split the work of a case into network calls of about ``chunk`` samples (tiles x mirrored copies).

    With several streams and too few tiles to keep them busy, the mirror combinations of a tile are spread over
    separate calls instead.
    """
    tiles_per_call = max(1, chunk // n_mirrors)
    mirrors_per_call = min(n_mirrors, max(1, chunk // tiles_per_call))
    if streams > 1 and math.ceil(n_tiles / tiles_per_call) * n_networks < streams:
        mirrors_per_call = max(1, math.ceil(n_mirrors / streams))
    units = []
    for tiles in _batches(n_tiles, tiles_per_call):
        first = True
        for net in range(n_networks):
            for group in _batches(n_mirrors, mirrors_per_call):
                units.append(_Unit(tiles, net, tuple(group), first))
                first = False
    return units


@contextlib.contextmanager
def _intra_op_threads(n: int) -> Iterator[None]:
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _streams(options: SlidingWindowOptions, device: Device, n_units: int) -> int:
    if device_type(device) != "cpu":
        return 1
    if is_host(device):  # the runtimes behind host arrays have their own thread pools
        return max(1, min(options.cpu_streams or 1, n_units))
    import torch

    wanted = options.cpu_streams or min(4, torch.get_num_threads())
    return max(1, min(wanted, n_units))


def _torch_contexts(device: Device, precision: str) -> tuple[Callable[[], Any], Callable[[], Any]]:
    """Context factories for a network call on ``device``: (no autograd, autocast); no-ops for host arrays."""
    if is_host(device):
        return contextlib.nullcontext, contextlib.nullcontext
    import torch

    from autounet.networks.precision import autocast_dtype

    amp = autocast_dtype(precision, device)
    autocast = (lambda: torch.autocast(device.type, dtype=amp)) if amp is not None else contextlib.nullcontext
    return torch.inference_mode, autocast


def predict_sliding_window(networks: Sequence[Network], data: Any, *, patch_size: Sequence[int], num_outputs: int,
                           options: SlidingWindowOptions, device: Device,
                           results_device: Device | None = None) -> Any:
    """Fold-averaged logits ``(num_outputs, *spatial)`` (float32, on ``results_device``) of a preprocessed case.

    Args:
        networks: one network per fold, already on ``device`` and in eval mode.
        data: ``(C, a0, a1, a2)`` preprocessed input (cascade channels already stacked), NumPy or torch.
        patch_size: the configuration's patch size (2 or 3 entries).
        num_outputs: channels the networks produce.
        options: tiling, mirroring, batching, precision and CPU streams.
        device: where the networks run: a ``torch.device``, or :data:`~autounet.inference.arrays.HOST` for
            networks that take and return NumPy arrays.
        results_device: where the accumulation buffers live (default: ``device``).
    """
    if not networks:
        msg = "At least one network (fold) is needed for prediction."
        raise UsageError(msg)
    results_device = results_device or device
    if len(data.shape) != 4:
        msg = f"Expected a preprocessed case (C, a0, a1, a2), got shape {tuple(data.shape)}."
        raise UsageError(msg)
    padded, revert = pad_to_patch(as_array(data, results_device), patch_size)
    grid = tile_grid(padded.shape[1:], patch_size, options.step)
    mirrors = mirror_combinations(options.mirror_axes)
    chunk = options.tile_batch or choose_tile_batch(networks[0], (padded.shape[0], *patch_size),
                                                    device=device, n_mirrors=len(mirrors))
    streams = _streams(options, device, len(grid) * len(networks) * len(mirrors))
    units = plan_units(len(grid), len(networks), len(mirrors), chunk=chunk, streams=streams)
    streams = min(streams, len(units))
    gaussian = gaussian_weights(patch_size, device=results_device, use_gaussian=options.use_gaussian)
    tile_weight = move(gaussian / len(mirrors), device)
    gaussian = namespace(results_device).reshape(gaussian, grid.patch3)
    no_grad, autocast = _torch_contexts(device, options.precision)
    acc = _Accumulator(num_outputs, padded.shape[1:], results_device)
    log.debug("sliding window: %d tiles x %d mirrors x %d folds in %d calls of <= %d, %d stream(s)", len(grid),
              len(mirrors), len(networks), len(units), chunk, streams)

    def run(unit: _Unit) -> None:
        with no_grad():
            x = _gather_tiles(padded, grid, unit.tiles, device)
            out = _predict_mirrored(networks[unit.network], x, [mirrors[m] for m in unit.mirrors], chunk, autocast)
            out *= tile_weight
            acc.add(grid, unit.tiles, out[:, :, None] if grid.squeeze else out, gaussian if unit.first else None)

    if streams == 1:
        for unit in units:
            run(unit)
    else:
        threads = contextlib.nullcontext() if is_host(device) else \
            _intra_op_threads(max(1, _torch_threads() // streams))
        with threads, ThreadPoolExecutor(streams, thread_name_prefix="autounet-tiles") as pool:
            for _ in pool.map(run, units):
                pass
    with no_grad():
        logits = acc.finish(len(networks))
    return logits[(slice(None), *revert)]


def _torch_threads() -> int:
    import torch

    return int(torch.get_num_threads())


def choose_tile_batch(network: Network, input_shape: Sequence[int], *, device: Device,
                      n_mirrors: int = 1, cpu_cap: int = 8, gpu_cap: int = 64) -> int:
    """Tiles per network call from free memory.

    On CUDA: measure the peak memory of one forward pass with a single tile and fill half of the free memory
    (capped at ``gpu_cap``). On the CPU: an estimate of the activations of one tile at full resolution (six live
    maps of the first stage's width) against an eighth of the available host memory (at most 1 GiB), capped at
    ``cpu_cap``; small networks get several tiles per call (less per-call overhead), large patches one.
    """
    if device_type(device) != "cuda":
        width = first_stage_width(network)
        per_tile = 4 * 6 * width * math.prod(int(s) for s in input_shape[1:])
        budget = min(2**30, _available_host_memory() // 8)
        return max(1, min(cpu_cap, budget // max(1, per_tile)))
    import torch

    from autounet.networks.precision import autocast_dtype

    free, _total = torch.cuda.mem_get_info(device)
    torch.cuda.reset_peak_memory_stats(device)
    before = torch.cuda.memory_allocated(device)
    with torch.inference_mode():
        x = torch.zeros((1, *input_shape), device=device)
        with torch.autocast("cuda", dtype=autocast_dtype("auto", device)):
            network(x)
    per_tile = max(1, torch.cuda.max_memory_allocated(device) - before)
    batch = int(0.5 * free // per_tile)
    return max(1, min(gpu_cap, batch))


def first_stage_width(network: Network) -> int:
    """Output channels of the network's first convolution (32 when there is none, or the backend's own figure)."""
    width = getattr(network, "first_stage_width", None)
    if isinstance(width, int):
        return width
    modules = getattr(network, "modules", None)
    if modules is None:  # not a torch module
        return 32
    from torch import nn

    for module in modules():
        if isinstance(module, (nn.Conv2d, nn.Conv3d)):
            return int(module.out_channels)
    return 32


def _available_host_memory() -> int:
    """``MemAvailable`` from /proc/meminfo (Linux), else 8 GiB."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 8 * 2**30


def predicted_shape(spatial: Sequence[int], patch: Sequence[int]) -> tuple[int, ...]:
    """Spatial shape after padding to the patch (useful to estimate memory)."""
    offset = len(spatial) - len(patch)
    return tuple(max(int(s), int(patch[i - offset])) if i >= offset else int(s) for i, s in enumerate(spatial))


def buffer_bytes(num_outputs: int, spatial: Sequence[int], patch: Sequence[int]) -> int:
    """Bytes of the float32 accumulation buffers for one case."""
    return 4 * (num_outputs + 1) * math.prod(predicted_shape(spatial, patch))
