"""ONNX export of a trained configuration and ONNX Runtime sessions that stand in for its PyTorch networks.

:func:`export_onnx` writes one ``.onnx`` file per model folder: the network of every requested fold in one graph
whose output is the fold-mean of the logits (the sliding window's fold average is linear, so the segmentation is
the same as ensembling the folds one by one). Input ``image`` is ``(tiles, channels, *patch_size)`` float32 in the
preprocessed space, with a dynamic tile axis; output ``logits`` is ``(tiles, outputs, *patch_size)``. Everything a
deployment needs to preprocess and postprocess is stored as ``metadata_props``: the plans and ``dataset.json`` in
full (``autounet.plans``, ``autounet.dataset``) and readable summaries (``patch_size``, ``spacing``,
``normalization``, ``labels``, ``mirror_axes``, ...).

:func:`~autounet.inference.onnx_runtime.load_onnx_model` reads such a file back without torch. This module also
converts a PyTorch-loaded model in memory (:func:`to_onnxruntime`, :func:`to_openvino`) for ``predict -m FOLDER
--backend onnxruntime|openvino``, and makes the opt-in int8 model.
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
from autounet.inference.onnx_runtime import FORMAT, FORMAT_VERSION, OpenVinoNetwork, OrtNetwork, ort_providers
from autounet.inference.sliding import first_stage_width

log = get_logger(__name__)

OPSET = 17
INPUT_NAME = "image"
OUTPUT_NAME = "logits"


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
        "first_stage_width": str(first_stage_width(model.networks[0])),
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
    got = OrtNetwork(data)(x.numpy())
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
        padded, _ = pad_to_patch(predictor.preprocess(arr, geometry).data, patch)
        grid = tile_grid(padded.shape[1:], patch, 0.5)
        for i in range(len(grid)):
            tile = padded[(slice(None), *grid.slices(i))]
            tiles.append(np.asarray((tile[:, 0] if grid.squeeze else tile)[None], dtype=np.float32))
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


# ---- in-memory conversion of a PyTorch-loaded model -----------------------------------------------------------------
def to_openvino(model: LoadedModel, *, threads: int | None = None, opset: int = OPSET,
                precision: str = "fp32") -> list[OpenVinoNetwork]:
    """Replace a PyTorch-loaded model's networks by one OpenVINO model (fold mean), converted in memory."""
    width = first_stage_width(model.networks[0])
    (graph,) = onnx_bytes(model, opset=opset)
    return [OpenVinoNetwork(graph, threads=threads, first_stage_width=width, precision=precision)]


def to_onnxruntime(model: LoadedModel, *, threads: int | None = None, device: Any = "cpu",
                   opset: int = OPSET) -> list[OrtNetwork]:
    """Replace a PyTorch-loaded model's networks by one ONNX Runtime session (fold mean), converted in memory."""
    width = first_stage_width(model.networks[0])
    (graph,) = onnx_bytes(model, opset=opset)
    return [OrtNetwork(graph, threads=threads, providers=ort_providers(device), first_stage_width=width)]

