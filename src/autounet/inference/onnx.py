"""ONNX export of a trained configuration and ONNX Runtime sessions that stand in for its PyTorch networks.

:func:`export_onnx` writes one ``.onnx`` file per model folder: the network of every requested fold in one graph
whose output is the fold-mean of the logits (the sliding window's fold average is linear, so the segmentation is
the same as ensembling the folds one by one). Input ``image`` is ``(tiles, channels, *patch_size)`` float32 in the
preprocessed space, with a dynamic tile axis; output ``logits`` is ``(tiles, outputs, *patch_size)``. Everything a
deployment needs to preprocess and postprocess is stored as ``metadata_props``: the plans and ``dataset.json`` in
full (``autounet.plans``, ``autounet.dataset``) and readable summaries (``patch_size``, ``spacing``,
``normalization``, ``labels``, ``mirror_axes``, ...).

:func:`load_onnx_model` reads such a file back into a :class:`~autounet.inference.model.LoadedModel` whose
"networks" are :class:`OrtNetwork` sessions, so :class:`~autounet.inference.Predictor` runs the same sliding
window, mirroring and export on it. An ONNX file holds no code, but its metadata is untrusted: it is validated
through the plans and dataset schemas and checked against the graph's input and output shapes.
"""

from __future__ import annotations

import io
import json
import logging
import os
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from autounet import networks
from autounet._atomic import atomic_path
from autounet._log import get_logger
from autounet.errors import CheckpointError, UsageError
from autounet.inference.model import LoadedModel, load_model
from autounet.labels import LabelSpec
from autounet.schemas.dataset import DatasetSpec
from autounet.schemas.plans import Plans

log = get_logger(__name__)

OPSET = 17
FORMAT = "autounet-onnx"
FORMAT_VERSION = "1"
INPUT_NAME = "image"
OUTPUT_NAME = "logits"
MAX_METADATA_CHARS = 4_000_000


class FoldMean(nn.Module):
    """The mean of several folds' logits (a single fold is returned as is)."""

    def __init__(self, nets: Sequence[nn.Module]) -> None:
        super().__init__()
        self.folds = nn.ModuleList(nets)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.folds[0](x)
        for net in self.folds[1:]:
            out = out + net(x)
        return out if len(self.folds) == 1 else out / float(len(self.folds))


def _plain_networks(model: LoadedModel) -> list[nn.Module]:
    """The model's fold networks rebuilt in the default (exportable) memory layout, on the CPU, in eval mode."""
    out: list[nn.Module] = []
    for net in model.networks:
        plain = networks.build(model.configuration.network, in_channels=model.in_channels,
                               num_outputs=model.labels.num_outputs, deep_supervision=False, channels_last=False)
        plain.load_state_dict({k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()})
        out.append(plain.eval())
    return out


def onnx_bytes(model: LoadedModel, *, opset: int = OPSET, average_folds: bool = True) -> list[bytes]:
    """Serialized ONNX graphs of the model's networks: one graph for the fold mean, or one per fold."""
    if opset < OPSET:
        msg = f"ONNX opset {opset} is too old: use {OPSET} or newer."
        raise UsageError(msg)
    nets = _plain_networks(model)
    modules: list[nn.Module] = [FoldMean(nets)] if average_folds else nets
    example = torch.zeros((2, model.in_channels, *model.configuration.patch_size), dtype=torch.float32)
    graphs = []
    for module in modules:
        buf = io.BytesIO()
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(module, (example,), buf, dynamo=False, opset_version=opset,  # type: ignore[arg-type]
                              input_names=[INPUT_NAME], output_names=[OUTPUT_NAME],
                              dynamic_axes={INPUT_NAME: {0: "tiles"}, OUTPUT_NAME: {0: "tiles"}})
        graphs.append(buf.getvalue())
    return graphs


def model_metadata(model: LoadedModel) -> dict[str, str]:
    """The ``metadata_props`` of an exported model (all values are strings; JSON where structured)."""
    from autounet import __version__

    config = model.configuration
    return {
        "autounet.format": FORMAT,
        "autounet.format_version": FORMAT_VERSION,
        "autounet.version": str(__version__),
        "autounet.plans": json.dumps(model.plans.to_dict()),
        "autounet.dataset": json.dumps(model.dataset.to_dict()),
        "configuration": config.name,
        "trainer": model.trainer,
        "folds": json.dumps(list(model.folds)),
        "checkpoint": model.checkpoint,
        "patch_size": json.dumps(list(config.patch_size)),
        "spacing": json.dumps(list(config.spacing)),
        "transpose_forward": json.dumps(list(model.plans.transpose_forward)),
        "normalization": json.dumps([c.to_dict() if hasattr(c, "to_dict") else str(c)
                                     for c in config.normalization]),
        "intensity_properties": json.dumps(model.plans.foreground_intensity_properties_per_channel),
        "labels": json.dumps(model.dataset.labels),
        "channel_names": json.dumps(model.dataset.channel_names),
        "mirror_axes": json.dumps(list(model.mirror_axes)),
        "num_input_channels": str(model.in_channels),
        "num_outputs": str(model.labels.num_outputs),
        "input": f"{INPUT_NAME}: (tiles, {model.in_channels}, {', '.join(map(str, config.patch_size))}) float32, "
                 "preprocessed (transposed, resampled to spacing, normalized) tiles",
        "output": f"{OUTPUT_NAME}: (tiles, {model.labels.num_outputs}, ...) fold-mean logits; combine tiles with a "
                  "Gaussian importance map (sigma = patch/8), average mirrored copies over mirror_axes",
    }


def export_onnx(model_dir: Path, output: Path, *, folds: Sequence[int | str] | None = None,
                checkpoint_name: str = "checkpoint_final.pth", opset: int = OPSET, verify: bool = True,
                int8_calibration: Sequence[Sequence[str | os.PathLike[str]]] | None = None) -> Path:
    """Export a model folder's networks (the requested folds, averaged in the graph) to one ONNX file.

    ``output`` is the ``.onnx`` file, or a folder that receives ``<model folder name>.onnx``. With ``verify``,
    ONNX Runtime runs the file on a random tile and must match PyTorch within 1e-3 (else ``CheckpointError``).
    ``int8_calibration`` (opt-in; one channel-file list per case, a few training images) also writes the
    int8-quantized model beside it as ``<name>.int8.onnx``. Returns the float model's path.
    """
    import onnx

    model = load_model(model_dir, folds=folds, checkpoint=checkpoint_name, device=torch.device("cpu"))
    output = Path(output)
    if output.suffix != ".onnx":
        output = output / f"{Path(model_dir).name}.onnx"
    (graph,) = onnx_bytes(model, opset=opset)
    proto = onnx.load_from_string(graph)
    proto.producer_name = "autounet"
    onnx.helper.set_model_props(proto, model_metadata(model))
    onnx.checker.check_model(proto)
    data = proto.SerializeToString()
    if verify:
        _verify(model, data)
    output.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(output) as tmp:
        Path(tmp).write_bytes(data)
    log.info("Exported %s (folds %s) to %s (%.1f MB)", model.model_dir.name, ", ".join(model.folds), output,
             len(data) / 1e6)
    if int8_calibration:
        int8 = output.with_name(output.name[: -len(".onnx")] + ".int8.onnx")
        quantize_int8(output, int8, calibration_tiles(output, int8_calibration))
        log.info("Wrote the int8 model %s", int8)
    return output


def _verify(model: LoadedModel, data: bytes, *, tolerance: float = 1e-3) -> None:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn((2, model.in_channels, *model.configuration.patch_size), generator=gen)
    with torch.no_grad():
        expected = FoldMean(_plain_networks(model))(x).numpy()
    got = OrtNetwork(data)(x).numpy()
    diff = float(np.abs(got - expected).max())
    if not diff <= tolerance:
        msg = f"ONNX export of {model.model_dir} does not reproduce PyTorch: max |logit difference| {diff:.3g}."
        raise CheckpointError(msg)


# ---- int8 (opt-in) -------------------------------------------------------------------------------------------------
def calibration_tiles(onnx_file: str | os.PathLike[str], images: Sequence[Sequence[str | os.PathLike[str]]], *,
                      max_tiles: int = 64, seed: int = 0) -> list[np.ndarray]:
    """Preprocessed ``(1, C, *patch)`` tiles of ``images`` (one channel-file list per case) for int8 calibration."""
    from autounet.inference.predictor import Predictor
    from autounet.inference.sliding import pad_to_patch, tile_grid
    from autounet.io import read_images

    predictor = Predictor.from_model_dir(onnx_file, backend="onnxruntime", threads=1)
    patch = predictor.model.configuration.patch_size
    tiles: list[np.ndarray] = []
    for case in images:
        arr, geometry = read_images(list(case))
        data = torch.as_tensor(predictor.preprocess(arr, geometry).data)
        padded, _ = pad_to_patch(data, patch)
        grid = tile_grid(padded.shape[1:], patch, 0.5)
        for i in range(len(grid)):
            tile = padded[(slice(None), *grid.slices(i))]
            tiles.append((tile[:, 0] if grid.squeeze else tile)[None].numpy().astype(np.float32))
    if not tiles:
        msg = "int8 calibration needs at least one image."
        raise UsageError(msg)
    rng = np.random.default_rng(seed)
    keep = rng.permutation(len(tiles))[:max_tiles]
    return [tiles[i] for i in sorted(keep)]


def quantize_int8(onnx_file: str | os.PathLike[str], output: str | os.PathLike[str],
                  calibration: Sequence[np.ndarray]) -> Path:
    """Static int8 quantization (QDQ, per-channel weights, MinMax calibration on ``calibration`` tiles).

    Opt-in: check the quantized model's validation Dice against the float model before deploying it (the
    benchmark ``benchmarks/deploy_bench.py`` does). The metadata is kept, with ``quantization`` added.
    """
    import tempfile

    import onnx
    from onnxruntime.quantization import (
        CalibrationDataReader,
        CalibrationMethod,
        QuantFormat,
        QuantType,
        quantize_static,
    )

    class _Reader(CalibrationDataReader):
        def __init__(self) -> None:
            self._it = iter(calibration)

        def get_next(self) -> dict[str, np.ndarray] | None:
            tile = next(self._it, None)
            return None if tile is None else {INPUT_NAME: tile}

    source = onnx.load(os.fspath(onnx_file))
    meta = {p.key: p.value for p in source.metadata_props}
    output = Path(output)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    root_logger = logging.getLogger()
    level = root_logger.level
    with tempfile.TemporaryDirectory() as tmp:
        prepared, quantized = Path(tmp) / "prepared.onnx", Path(tmp) / "int8.onnx"
        try:
            root_logger.setLevel(logging.ERROR)  # onnxruntime.quantization warns on the root logger per bias
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                quant_pre_process(os.fspath(onnx_file), os.fspath(prepared), skip_symbolic_shape=True)
                quantize_static(os.fspath(prepared), os.fspath(quantized), _Reader(), quant_format=QuantFormat.QDQ,
                                per_channel=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                                calibrate_method=CalibrationMethod.MinMax)
        finally:
            root_logger.setLevel(level)
        proto = onnx.load(os.fspath(quantized))
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, {**meta, "quantization": "int8 static QDQ, per-channel weights, "
                                                               f"MinMax on {len(calibration)} tiles"})
    with atomic_path(output) as tmp_out:
        Path(tmp_out).write_bytes(proto.SerializeToString())
    return output


# ---- ONNX Runtime --------------------------------------------------------------------------------------------------
def ort_providers(device: str | torch.device) -> list[str]:
    """ONNX Runtime execution providers for ``device`` (``cpu``/``auto`` → CPU; ``cuda`` needs the CUDA provider)."""
    import onnxruntime as ort

    kind = device.type if isinstance(device, torch.device) else str(device).split(":")[0]
    if kind in ("cpu", "auto"):
        if kind == "auto" and "CUDAExecutionProvider" in ort.get_available_providers():
            return ["CUDAExecutionProvider", "CPUExecutionProvider"]
        return ["CPUExecutionProvider"]
    if kind == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            msg = "The onnxruntime backend has no CUDA provider here (install onnxruntime-gpu) - use --device cpu."
            raise UsageError(msg)
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    msg = f"The onnxruntime backend runs on cpu or cuda, not {device!r}."
    raise UsageError(msg)


class OrtNetwork:
    """An ONNX Runtime session called like the PyTorch network: ``(B, C, *patch)`` tensor in, logits out.

    Args:
        model: a serialized ONNX model (bytes) or a path to one.
        threads: intra-op threads of the session (``None``: ONNX Runtime's default, one per physical core).
        providers: execution providers (default CPU).
        first_stage_width: width of the first convolution (used to size tile batches); read from the graph if None.
    """

    def __init__(self, model: bytes | str | os.PathLike[str], *, threads: int | None = None,
                 providers: Sequence[str] = ("CPUExecutionProvider",),
                 first_stage_width: int | None = None) -> None:
        import onnxruntime as ort

        opts = ort.SessionOptions()
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        if threads is not None:
            opts.intra_op_num_threads = int(threads)
            opts.inter_op_num_threads = 1
        source = model if isinstance(model, bytes) else os.fspath(model)
        self.session = ort.InferenceSession(source, sess_options=opts, providers=list(providers))
        self.input_name = self.session.get_inputs()[0].name
        self.output_name = self.session.get_outputs()[0].name
        self.first_stage_width = first_stage_width or 32

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        arr = x.detach().to("cpu", torch.float32).contiguous().numpy()
        (y,) = self.session.run([self.output_name], {self.input_name: arr})
        return torch.from_numpy(y).to(x.device)


class OpenVinoNetwork:
    """An OpenVINO compiled model (read through its ONNX front end) called like the PyTorch network (CPU)."""

    def __init__(self, model: bytes | str | os.PathLike[str], *, threads: int | None = None,
                 first_stage_width: int | None = None) -> None:
        import openvino as ov

        core = ov.Core()
        source = model if isinstance(model, bytes) else os.fspath(model)
        network = core.read_model(io.BytesIO(source) if isinstance(source, bytes) else source)
        config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY"}
        if threads is not None:
            config["INFERENCE_NUM_THREADS"] = int(threads)
        self.compiled = core.compile_model(network, "CPU", config)
        self.first_stage_width = first_stage_width or 32

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        arr = x.detach().to("cpu", torch.float32).contiguous().numpy()
        request = self.compiled.create_infer_request()  # one per call: calls may come from several threads
        y = request.infer({0: arr})[self.compiled.output(0)]
        return torch.from_numpy(np.array(y, copy=True)).to(x.device)


def to_openvino(model: LoadedModel, *, threads: int | None = None, opset: int = OPSET) -> list[OpenVinoNetwork]:
    """Replace a PyTorch-loaded model's networks by one OpenVINO model (fold mean), converted in memory."""
    width = _first_conv_width_of(model.networks[0])
    (graph,) = onnx_bytes(model, opset=opset)
    return [OpenVinoNetwork(graph, threads=threads, first_stage_width=width)]


def _first_conv_width(proto: Any) -> int | None:
    inits = {t.name: t for t in proto.graph.initializer}
    for node in proto.graph.node:
        if node.op_type == "Conv" and len(node.input) > 1 and node.input[1] in inits:
            return int(inits[node.input[1]].dims[0])
    return None


def to_onnxruntime(model: LoadedModel, *, threads: int | None = None, device: str | torch.device = "cpu",
                   opset: int = OPSET) -> list[OrtNetwork]:
    """Replace a PyTorch-loaded model's networks by one ONNX Runtime session (fold mean), converted in memory."""
    width = _first_conv_width_of(model.networks[0])
    (graph,) = onnx_bytes(model, opset=opset)
    return [OrtNetwork(graph, threads=threads, providers=ort_providers(device), first_stage_width=width)]


def _first_conv_width_of(net: Any) -> int | None:
    if isinstance(net, (OrtNetwork, OpenVinoNetwork)):
        return net.first_stage_width
    for module in net.modules():
        if isinstance(module, (nn.Conv2d, nn.Conv3d)):
            return int(module.out_channels)
    return None


# ---- loading an exported file --------------------------------------------------------------------------------------
def _meta_json(meta: dict[str, str], key: str, path: Path) -> Any:
    if key not in meta:
        msg = f"{path} has no '{key}' metadata: not an ONNX model exported by autounet."
        raise CheckpointError(msg)
    if len(meta[key]) > MAX_METADATA_CHARS:
        msg = f"{path}: metadata '{key}' is implausibly large ({len(meta[key])} characters)."
        raise CheckpointError(msg)
    try:
        return json.loads(meta[key])
    except json.JSONDecodeError as exc:
        msg = f"{path}: metadata '{key}' is not valid JSON ({exc.msg} at character {exc.pos})."
        raise CheckpointError(msg) from exc


def _dims(value_info: Any) -> list[int | str]:
    return [d.dim_value if d.HasField("dim_value") else d.dim_param
            for d in value_info.type.tensor_type.shape.dim]


def load_onnx_model(path: str | os.PathLike[str], *, threads: int | None = None,
                    device: str | torch.device = "cpu", runtime: str = "onnxruntime") -> LoadedModel:
    """Read an ONNX file written by :func:`export_onnx`: validated settings plus one ONNX Runtime session
    (``runtime="openvino"``: one OpenVINO compiled model)."""
    import onnx

    from autounet.errors import AutounetError

    path = Path(path)
    if not path.is_file():
        msg = f"ONNX model not found: {path}"
        raise UsageError(msg)
    try:
        proto = onnx.load(os.fspath(path), load_external_data=False)
    except Exception as exc:
        msg = f"{path} is not a readable ONNX model: {type(exc).__name__}: {exc}"
        raise CheckpointError(msg) from exc
    meta = {p.key: p.value for p in proto.metadata_props}
    if meta.get("autounet.format") != FORMAT:
        msg = f"{path} was not exported by autounet (metadata autounet.format is {meta.get('autounet.format')!r})."
        raise CheckpointError(msg)
    if meta.get("autounet.format_version") != FORMAT_VERSION:
        msg = (f"{path} has ONNX format version {meta.get('autounet.format_version')!r}; this autounet reads "
               f"version {FORMAT_VERSION}.")
        raise CheckpointError(msg)
    if any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer):
        msg = f"{path} refers to external weight files; export it again as one self-contained file."
        raise CheckpointError(msg)
    try:
        plans = Plans.from_dict(_meta_json(meta, "autounet.plans", path), where=f"{path} (plans metadata)")
        dataset = DatasetSpec.from_dict(_meta_json(meta, "autounet.dataset", path))
        labels = LabelSpec.from_dataset_spec(dataset)
        config = plans.configuration(str(meta.get("configuration", "")))
    except CheckpointError:
        raise
    except AutounetError as exc:
        msg = f"{path}: invalid metadata: {exc}"
        raise CheckpointError(msg) from exc
    folds = _meta_json(meta, "folds", path)
    axes = _meta_json(meta, "mirror_axes", path)
    if not isinstance(folds, list) or not isinstance(axes, list) or \
            not all(isinstance(a, int) and 0 <= a < config.ndim for a in axes):
        msg = f"{path}: metadata 'folds' / 'mirror_axes' malformed ({folds!r}, {axes!r})."
        raise CheckpointError(msg)
    model = LoadedModel(model_dir=path.parent, plans=plans, configuration=config, dataset=dataset, labels=labels,
                        trainer=str(meta.get("trainer", "")), folds=tuple(str(f) for f in folds),
                        checkpoint=str(meta.get("checkpoint", "")), mirror_axes=tuple(axes), networks=[])
    if model.is_cascade:
        msg = (f"{path} is a cascade stage ({config.name}) and needs its 3d_lowres stage: predict from the model "
               "folder with --backend onnxruntime instead.")
        raise UsageError(msg)
    expected_in = [model.in_channels, *config.patch_size]
    graph_in = _dims(proto.graph.input[0])
    graph_out = _dims(proto.graph.output[0])
    if len(proto.graph.input) != 1 or graph_in[1:] != expected_in or \
            graph_out[1:2] != [labels.num_outputs]:
        msg = (f"{path}: the graph's input {graph_in} / output {graph_out} do not fit the metadata (channels "
               f"{model.in_channels}, patch {list(config.patch_size)}, outputs {labels.num_outputs}).")
        raise CheckpointError(msg)
    width = _first_conv_width(proto)
    del proto
    if runtime == "openvino":
        model.networks = [OpenVinoNetwork(path, threads=threads, first_stage_width=width)]  # type: ignore[list-item]
    else:
        model.networks = [OrtNetwork(path, threads=threads, providers=ort_providers(device),  # type: ignore[list-item]
                                     first_stage_width=width)]
    log.info("Loaded ONNX model %s (%s, folds %s)", path.name, config.name, ", ".join(model.folds))
    return model
