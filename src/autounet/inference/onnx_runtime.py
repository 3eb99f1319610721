"""Running an exported ``.onnx`` model with ONNX Runtime or OpenVINO, without torch and without the ``onnx`` package.

:func:`load_onnx_model` reads a file written by :func:`autounet.inference.onnx.export_onnx` into a
:class:`~autounet.inference.model.LoadedModel` whose "networks" are :class:`OrtNetwork` or
:class:`OpenVinoNetwork` callables on NumPy arrays, so :class:`~autounet.inference.Predictor` runs the same
sliding window, mirroring and export on them (on NumPy arrays: :mod:`autounet.inference.arrays`). Start-up is the
runtime's own: neither torch (about 1.5 s to import) nor ``onnx`` (about 1 s) is imported on this path.

An ONNX file holds no code, but it is untrusted:

- weights stored in external files are refused before any runtime sees the file (they would be read from paths
  the file names), by a scan of the protobuf wire format (:func:`external_data_tensors`);
- the metadata is validated through the plans and dataset schemas and checked against the graph's input and
  output shapes as the runtime reports them.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from autounet._log import get_logger
from autounet.errors import AutounetError, CheckpointError, UsageError
from autounet.inference.model import LoadedModel
from autounet.labels import LabelSpec
from autounet.schemas.dataset import DatasetSpec
from autounet.schemas.plans import Plans

log = get_logger(__name__)

FORMAT = "autounet-onnx"
FORMAT_VERSION = "1"
MAX_METADATA_CHARS = 4_000_000
#: distinct input shapes the OpenVINO backend compiles static programs for (then one dynamic program)
MAX_STATIC_SHAPES = 4


# ---- the protobuf wire format: external weights --------------------------------------------------------------------
# field numbers from onnx.proto: which fields of which message hold messages that can hold tensors
_CHILDREN: dict[str, dict[int, str]] = {
    "model": {7: "graph", 20: "training", 25: "function"},
    "training": {1: "graph", 2: "graph"},
    "function": {7: "node", 11: "attribute"},
    "graph": {1: "node", 5: "tensor", 15: "sparse"},
    "node": {5: "attribute"},
    "attribute": {5: "tensor", 6: "graph", 10: "tensor", 11: "graph", 22: "sparse", 23: "sparse"},
    "sparse": {1: "tensor", 2: "tensor"},
}
_TENSOR_EXTERNAL_DATA = 13  # repeated StringStringEntryProto external_data
_TENSOR_DATA_LOCATION = 14  # DataLocation data_location (EXTERNAL = 1)
_MAX_DEPTH = 64


def _varint(buf: memoryview, pos: int, end: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if pos >= end or shift > 63:
            raise ValueError("truncated or overlong varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _fields(buf: memoryview, start: int, end: int) -> Iterator[tuple[int, int, int, int]]:
    """``(field number, wire type, value or payload start, payload end)`` of a message's fields."""
    pos = start
    while pos < end:
        key, pos = _varint(buf, pos, end)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos, end)
            yield field, wire, value, pos
        elif wire == 1:
            pos += 8
            yield field, wire, pos - 8, pos
        elif wire == 2:
            length, pos = _varint(buf, pos, end)
            if pos + length > end:
                raise ValueError("a field runs past the end of its message")
            yield field, wire, pos, pos + length
            pos += length
        elif wire == 5:
            pos += 4
            yield field, wire, pos - 4, pos
        else:
            raise ValueError(f"unsupported wire type {wire}")
        if pos > end:
            raise ValueError("a field runs past the end of its message")


def external_data_tensors(data: bytes | memoryview) -> int:
    """How many tensors of a serialized ONNX model keep their values in external files (initializers, sparse
    initializers, attribute tensors, in the main graph, subgraphs, functions and training graphs).

    Raises ``ValueError`` when the bytes are not a well-formed protobuf message.
    """
    buf = memoryview(data)
    found = 0
    stack: list[tuple[str, int, int, int]] = [("model", 0, len(buf), 0)]
    while stack:
        kind, start, end, depth = stack.pop()
        if depth > _MAX_DEPTH:
            raise ValueError(f"messages nested deeper than {_MAX_DEPTH} levels")
        for field, wire, a, b in _fields(buf, start, end):
            if kind == "tensor":
                if (field, wire) == (_TENSOR_EXTERNAL_DATA, 2) or ((field, wire) == (_TENSOR_DATA_LOCATION, 0) and a):
                    found += 1
                    break
                continue
            child = _CHILDREN[kind].get(field)
            if child is not None and wire == 2:
                stack.append((child, a, b, depth + 1))
    return found


def _check_self_contained(path: Path, data: bytes) -> None:
    try:
        n = external_data_tensors(data)
    except ValueError as exc:
        msg = f"{path} is not a readable ONNX model: {exc}."
        raise CheckpointError(msg) from exc
    if n:
        msg = f"{path} refers to external weight files ({n} tensors); export it again as one self-contained file."
        raise CheckpointError(msg)


# ---- ONNX Runtime --------------------------------------------------------------------------------------------------
def ort_providers(device: Any) -> list[str]:
    """ONNX Runtime execution providers for ``device`` (``cpu``/``auto`` → CPU; ``cuda`` needs the CUDA provider)."""
    import onnxruntime as ort

    kind = str(getattr(device, "type", device)).split(":")[0]
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
    """An ONNX Runtime session called like a network: ``(B, C, *patch)`` float32 NumPy array in, logits out.

    Args:
        model: a serialized ONNX model (bytes) or a path to one.
        threads: intra-op threads of the session (``None``: ONNX Runtime's default, one per physical core).
        providers: execution providers (default CPU).
        first_stage_width: width of the first convolution (used to size tile batches; default 32).
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

    def __call__(self, x: np.ndarray) -> np.ndarray:
        (y,) = self.session.run([self.output_name], {self.input_name: np.ascontiguousarray(x, dtype=np.float32)})
        return np.asarray(y)

    def metadata(self) -> dict[str, str]:
        """The model's ``metadata_props``."""
        return dict(self.session.get_modelmeta().custom_metadata_map)

    def io_shapes(self) -> tuple[int, list[int | str], list[int | str]]:
        """Number of graph inputs, the first input's and the first output's shape (names for dynamic axes)."""
        inputs, outputs = self.session.get_inputs(), self.session.get_outputs()
        return len(inputs), list(inputs[0].shape), list(outputs[0].shape)


# ---- OpenVINO ------------------------------------------------------------------------------------------------------
def openvino_precision_hint(precision: str) -> str:
    """OpenVINO's ``INFERENCE_PRECISION_HINT`` for ``--precision`` (float32 unless bf16 is asked for)."""
    return "bf16" if precision == "bf16" else "f32"


class OpenVinoNetwork:
    """An OpenVINO model (read through its ONNX front end) called like a network on NumPy arrays (CPU).

    Each input shape gets its own static program, compiled at its first call (about 5-10 % faster than one
    program for a dynamic tile axis); after :data:`MAX_STATIC_SHAPES` shapes, one dynamic program serves the rest,
    so memory stays bounded.

    Args:
        model: a serialized ONNX model (bytes) or a path to one.
        threads: inference threads (``None``: OpenVINO's default).
        first_stage_width: width of the first convolution (used to size tile batches; default 32).
        precision: ``fp32`` (also ``auto``) or ``bf16`` (CPUs with native bf16).
    """

    def __init__(self, model: bytes | str | os.PathLike[str], *, threads: int | None = None,
                 first_stage_width: int | None = None, precision: str = "fp32") -> None:
        import openvino as ov

        self._core = ov.Core()
        source = model if isinstance(model, bytes) else os.fspath(model)
        if isinstance(source, bytes):
            import io

            self._model = self._core.read_model(io.BytesIO(source))
        else:
            self._model = self._core.read_model(source)
        self._config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": openvino_precision_hint(precision),
                                        "PERFORMANCE_HINT": "LATENCY"}
        if threads is not None:
            self._config["INFERENCE_NUM_THREADS"] = int(threads)
        self._programs: dict[tuple[int, ...] | None, Any] = {}
        self._lock = threading.Lock()
        self.first_stage_width = first_stage_width or 32

    def _program(self, shape: tuple[int, ...]) -> Any:
        with self._lock:
            key: tuple[int, ...] | None = shape
            if key not in self._programs and len(self._programs) >= MAX_STATIC_SHAPES:
                key = None
            program = self._programs.get(key)
            if program is None:
                model = self._model
                if key is not None:
                    model = self._model.clone()
                    model.reshape({0: list(key)})
                program = self._core.compile_model(model, "CPU", self._config)
                self._programs[key] = program
            return program

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(x, dtype=np.float32)
        program = self._program(tuple(int(s) for s in x.shape))
        request = program.create_infer_request()  # one per call: calls may come from several threads
        y = request.infer({0: x})[program.output(0)]
        return np.array(y, copy=True)  # the request's output buffer is reused

    def metadata(self) -> dict[str, str]:
        """The ONNX model's ``metadata_props`` (OpenVINO keeps them under ``framework`` in its runtime info)."""
        info = self._model.get_rt_info()
        if "framework" not in info:
            return {}
        framework = info["framework"]
        return {str(k): str(framework[k].astype(str)) for k in framework}

    def io_shapes(self) -> tuple[int, list[int | str], list[int | str]]:
        """Number of graph inputs, the first input's and the first output's shape (``?`` for dynamic axes)."""
        def dims(port: Any) -> list[int | str]:
            return [d.get_length() if d.is_static else "?" for d in port.get_partial_shape()]

        return len(self._model.inputs), dims(self._model.inputs[0]), dims(self._model.outputs[0])


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


def _model_from_metadata(meta: dict[str, str], path: Path) -> LoadedModel:
    if meta.get("autounet.format") != FORMAT:
        msg = f"{path} was not exported by autounet (metadata autounet.format is {meta.get('autounet.format')!r})."
        raise CheckpointError(msg)
    if meta.get("autounet.format_version") != FORMAT_VERSION:
        msg = (f"{path} has ONNX format version {meta.get('autounet.format_version')!r}; this autounet reads "
               f"version {FORMAT_VERSION}.")
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
    return model


def _first_stage_width(meta: dict[str, str]) -> int | None:
    value = meta.get("first_stage_width", "")
    return int(value) if value.isdigit() and 0 < int(value) < 1_000_000 else None


def load_onnx_model(path: str | os.PathLike[str], *, threads: int | None = None, device: Any = "cpu",
                    runtime: str = "onnxruntime", precision: str = "fp32") -> LoadedModel:
    """Read an ONNX file written by :func:`~autounet.inference.onnx.export_onnx`: validated settings plus one
    ONNX Runtime session (``runtime="openvino"``: one OpenVINO model) that takes and returns NumPy arrays."""
    path = Path(path)
    if not path.is_file():
        msg = f"ONNX model not found: {path}"
        raise UsageError(msg)
    data = path.read_bytes()
    _check_self_contained(path, data)
    network: OrtNetwork | OpenVinoNetwork
    try:
        if runtime == "openvino":
            network = OpenVinoNetwork(data, threads=threads, precision=precision)
        else:
            network = OrtNetwork(data, threads=threads, providers=ort_providers(device))
    except AutounetError:
        raise
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else ""
        msg = f"{path} is not a readable ONNX model: {type(exc).__name__}: {first}"
        raise CheckpointError(msg) from exc
    del data
    meta = network.metadata()
    model = _model_from_metadata(meta, path)
    expected_in = [model.in_channels, *model.configuration.patch_size]
    n_inputs, graph_in, graph_out = network.io_shapes()
    if n_inputs != 1 or graph_in[1:] != expected_in or graph_out[1:2] != [model.labels.num_outputs]:
        msg = (f"{path}: the graph's input {graph_in} / output {graph_out} do not fit the metadata (channels "
               f"{model.in_channels}, patch {list(model.configuration.patch_size)}, outputs "
               f"{model.labels.num_outputs}).")
        raise CheckpointError(msg)
    network.first_stage_width = _first_stage_width(meta) or 32
    model.networks = [network]
    log.info("Loaded ONNX model %s (%s, folds %s, %s)", path.name, model.configuration.name, ", ".join(model.folds),
             runtime)
    return model
