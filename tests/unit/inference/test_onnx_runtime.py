"""Running an exported .onnx without torch: the external-weights scan, OpenVINO's per-shape programs, the
precision checks of the NumPy backends, and a whole ``predict`` in a process where torch cannot be imported."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import onnx
from onnx import TensorProto, helper, numpy_helper

from autounet.errors import CheckpointError, UsageError
from autounet.inference import Predictor
from autounet.inference.onnx import export_onnx
from autounet.inference.onnx_runtime import (
    MAX_STATIC_SHAPES,
    OrtNetwork,
    external_data_tensors,
    load_onnx_model,
)

REPO = Path(__file__).resolve().parents[3]


# ---- the external-weights scan ---------------------------------------------------------------------------------------
def _graph(name: str, initializers: list[TensorProto], nodes: list | None = None) -> onnx.GraphProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    nodes = nodes or [helper.make_node("Add", ["x", initializers[0].name], ["y"])]
    return helper.make_graph(nodes, name, [x], [y], initializer=initializers)


def _external(tensor: TensorProto, location: str = "../../etc/passwd") -> TensorProto:
    tensor.ClearField("raw_data")
    tensor.data_location = TensorProto.EXTERNAL
    entry = tensor.external_data.add()
    entry.key, entry.value = "location", location
    return tensor


def _weights(name: str = "w") -> TensorProto:
    return numpy_helper.from_array(np.ones(2, dtype=np.float32), name)


def test_self_contained_model_has_no_external_tensors():
    model = helper.make_model(_graph("g", [_weights()]))
    assert external_data_tensors(model.SerializeToString()) == 0


def test_external_initializer_is_found():
    model = helper.make_model(_graph("g", [_external(_weights())]))
    assert external_data_tensors(model.SerializeToString()) == 1


def test_external_tensor_inside_a_subgraph_attribute_is_found():
    then = _graph("then", [_external(_weights("t"))], [helper.make_node("Identity", ["t"], ["y"])])
    other = _graph("else", [_weights("e")], [helper.make_node("Identity", ["e"], ["y"])])
    cond = numpy_helper.from_array(np.array(True), "c")
    node = helper.make_node("If", ["c"], ["y"], then_branch=then, else_branch=other)
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    model = helper.make_model(helper.make_graph([node], "main", [x], [y], initializer=[cond]))
    assert external_data_tensors(model.SerializeToString()) == 1


def test_external_constant_attribute_is_found():
    node = helper.make_node("Constant", [], ["y"], value=_external(_weights("k")))
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2])
    model = helper.make_model(helper.make_graph([node], "main", [x], [y]))
    assert external_data_tensors(model.SerializeToString()) == 1


def test_garbage_is_not_a_model():
    with pytest.raises(ValueError):
        external_data_tensors(b"\x0a\xff\xff\xff\xff\x0f" + b"\x00" * 8)  # a field longer than the file
    with pytest.raises(ValueError):
        external_data_tensors(b"\x0b")  # wire type 3 (groups)


def test_loading_refuses_external_weights_before_any_runtime_reads_them(make_model, tmp_path):
    path = export_onnx(make_model(), tmp_path / "m.onnx", verify=False)
    proto = onnx.load(str(path))
    _external(proto.graph.initializer[0])
    bad = tmp_path / "external.onnx"
    bad.write_bytes(proto.SerializeToString())
    for runtime in ("onnxruntime", "openvino"):
        with pytest.raises(CheckpointError, match=r"external\.onnx refers to external weight files \(1 tensors\)"):
            load_onnx_model(bad, runtime=runtime)
    (tmp_path / "junk.onnx").write_bytes(b"\x0b not a model")
    with pytest.raises(CheckpointError, match="junk.onnx is not a readable ONNX model"):
        load_onnx_model(tmp_path / "junk.onnx")


# ---- OpenVINO: one static program per input shape ------------------------------------------------------------------
def test_openvino_compiles_a_static_program_per_shape_then_a_dynamic_one(make_model, tmp_path, rng):
    pytest.importorskip("openvino")
    path = export_onnx(make_model(), tmp_path / "m.onnx", verify=False)
    network = load_onnx_model(path, runtime="openvino", threads=1).networks[0]
    reference = OrtNetwork(path, threads=1)
    for batch in range(1, MAX_STATIC_SHAPES + 3):
        x = rng.normal(size=(batch, 1, 16, 16, 16)).astype(np.float32)
        y = network(x)
        assert y.shape == (batch, 3, 16, 16, 16)
        assert float(np.abs(y - reference(x)).max()) < 1e-3
    assert len(network._programs) == MAX_STATIC_SHAPES + 1 and None in network._programs
    first = network(np.zeros((1, 1, 16, 16, 16), dtype=np.float32))
    first[...] = 7.0  # outputs are the caller's: the next call is not affected
    assert not np.any(network(np.zeros((1, 1, 16, 16, 16), dtype=np.float32)) == 7.0)


# ---- precision on the NumPy backends -------------------------------------------------------------------------------
def test_onnxruntime_refuses_reduced_precision(make_model, tmp_path):
    path = export_onnx(make_model(), tmp_path / "m.onnx", verify=False)
    with pytest.raises(UsageError, match="onnxruntime backend runs the float32 graph"):
        Predictor.from_model_dir(path, backend="onnxruntime", precision="bf16")


def test_openvino_bf16_needs_native_bf16(make_model, tmp_path, monkeypatch):
    pytest.importorskip("openvino")
    from autounet.inference import backends

    path = export_onnx(make_model(), tmp_path / "m.onnx", verify=False)
    monkeypatch.setattr(backends, "cpu_flags_have_bf16", lambda: False)
    with pytest.raises(UsageError, match="no native bf16"):
        Predictor.from_model_dir(path, backend="openvino", precision="bf16")
    with pytest.raises(UsageError, match="fp16 is not available"):
        Predictor.from_model_dir(path, backend="openvino", precision="fp16")


def test_openvino_bf16_is_close_to_float32(make_model, tmp_path, rng):
    pytest.importorskip("openvino")
    from autounet.precision import cpu_flags_have_bf16

    if not cpu_flags_have_bf16():
        pytest.skip("this CPU has no native bf16 (AVX512-BF16 / AMX)")
    path = export_onnx(make_model(), tmp_path / "m.onnx", verify=False)
    img = rng.normal(size=(1, 21, 26, 19)).astype(np.float32)
    fp32 = Predictor.from_model_dir(path, backend="openvino", threads=1).predict(img, (1.0, 1.0, 1.0),
                                                                                 return_probabilities=True)
    bf16 = Predictor.from_model_dir(path, backend="openvino", threads=1, precision="bf16")
    assert bf16.model.networks[0]._config["INFERENCE_PRECISION_HINT"] == "bf16"
    got = bf16.predict(img, (1.0, 1.0, 1.0), return_probabilities=True)
    assert float(np.abs(got.probabilities - fp32.probabilities).max()) < 0.05
    assert not np.array_equal(got.probabilities, fp32.probabilities)  # really another precision


# ---- a whole predict without torch ---------------------------------------------------------------------------------
_NO_TORCH = textwrap.dedent("""
    import json, sys
    class Block:
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("torch", "onnx"):
                raise ImportError(f"{name} is blocked in this test")
    sys.meta_path.insert(0, Block())
    from autounet.cli import main
    rc = main(sys.argv[1:])
    print(json.dumps({"rc": rc, "torch": "torch" in sys.modules, "onnx": "onnx" in sys.modules}))
""")


@pytest.mark.parametrize("backend", ["onnxruntime", "openvino"])
def test_predict_from_an_exported_file_never_imports_torch(make_model, tmp_path, rng, backend):
    pytest.importorskip(backend)
    import nibabel as nib

    model_dir = make_model(folds=(0, 1))
    path = export_onnx(model_dir, tmp_path / "m.onnx")
    images = tmp_path / "images"
    images.mkdir()
    for i in range(2):
        img = rng.normal(size=(19, 26, 21)).astype(np.float32)
        nib.save(nib.Nifti1Image(img, np.eye(4)), images / f"case{i}_0000.nii.gz")
    out = tmp_path / f"out_{backend}"
    cmd = [sys.executable, "-c", _NO_TORCH, "predict", "--quiet", "-m", str(path), "-i", str(images), "-o", str(out),
           "--backend", backend, "--device", "cpu", "--threads", "1"]
    env = {"PYTHONPATH": str(REPO / "src"), "PATH": "/usr/bin:/bin"}
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    status = json.loads(proc.stdout.strip().splitlines()[-1])
    assert status == {"rc": 0, "torch": False, "onnx": False}
    torch_out = tmp_path / "out_torch"
    from autounet.cli import main

    assert main(["predict", "--quiet", "-m", str(model_dir), "-i", str(images), "-o", str(torch_out),
                 "--device", "cpu"]) == 0
    for i in range(2):
        got = np.asarray(nib.load(out / f"case{i}.nii.gz").dataobj)
        ref = np.asarray(nib.load(torch_out / f"case{i}.nii.gz").dataobj)
        assert got.shape == (19, 26, 21) and 0 < ref.mean() < 2
        assert (got == ref).mean() >= 0.9999


def test_cluster_workers_build_the_requested_backend(make_model, tmp_path):
    from autounet.inference.distributed import ModelSpec

    path = export_onnx(make_model(), tmp_path / "m.onnx", verify=False)
    predictor = ModelSpec(str(path), device="cpu", backend="onnxruntime", threads=1).build()
    assert predictor.backend == "onnxruntime" and isinstance(predictor.model.networks[0], OrtNetwork)


def test_python_api_predicts_an_exported_file_with_a_chosen_backend(make_model, tmp_path, rng):
    import nibabel as nib

    from autounet import api

    model_dir = make_model()
    path = export_onnx(model_dir, tmp_path / "m.onnx", verify=False)
    images = tmp_path / "images"
    images.mkdir()
    nib.save(nib.Nifti1Image(rng.normal(size=(19, 26, 21)).astype(np.float32), np.eye(4)), images / "a_0000.nii.gz")
    report = api.predict(images, tmp_path / "ort", model_dir=path, backend="onnxruntime", threads=1,
                         use_mirroring=False, device="cpu")
    torch_report = api.predict(images, tmp_path / "torch", model_dir=model_dir, use_mirroring=False, device="cpu")
    assert report.written == torch_report.written == ["a"]
    got = np.asarray(nib.load(tmp_path / "ort" / "a.nii.gz").dataobj)
    ref = np.asarray(nib.load(tmp_path / "torch" / "a.nii.gz").dataobj)
    assert (got == ref).mean() >= 0.9999
    args = json.loads((tmp_path / "ort" / "predict_args.json").read_text(encoding="utf-8"))
    assert args["settings"]["backend"] == "onnxruntime" and args["settings"]["mirror_axes"] == []
    with pytest.raises(UsageError, match="float32 graph"):
        api.predict(images, tmp_path / "bad", model_dir=path, backend="onnxruntime", precision="bf16")
