"""ONNX export and the onnxruntime backend: same sliding window, same segmentation as PyTorch; safe loading."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")

import onnx

from autounet.errors import CheckpointError, UsageError
from autounet.inference import Predictor
from autounet.inference.onnx import OPSET, export_onnx
from autounet.inference.onnx_runtime import OrtNetwork, load_onnx_model


def _image(rng, shape=(21, 26, 19)):
    img = rng.normal(size=(1, *shape)).astype(np.float32)
    img[:, 5:14, 6:18, 4:12] += 2.5
    return img


def _agree(a, b):
    seg = float((a.segmentation == b.segmentation).mean())
    prob = float(np.abs(a.probabilities - b.probabilities).max())
    return seg, prob


@pytest.mark.parametrize("mirroring", [True, False])
def test_onnxruntime_backend_reproduces_torch(make_model, rng, mirroring):
    model_dir = make_model(folds=(0, 1))
    img = _image(rng)
    torch_pred = Predictor.from_model_dir(model_dir, device="cpu", use_mirroring=mirroring, tile_batch=4)
    ort_pred = Predictor.from_model_dir(model_dir, device="cpu", use_mirroring=mirroring, tile_batch=4,
                                        backend="onnxruntime", threads=1)
    assert all(isinstance(n, OrtNetwork) for n in ort_pred.model.networks)
    assert ort_pred.settings()["backend"] == "onnxruntime"
    a = torch_pred.predict(img, (1.0, 1.0, 1.0), return_probabilities=True)
    b = ort_pred.predict(img, (1.0, 1.0, 1.0), return_probabilities=True)
    seg, prob = _agree(a, b)
    assert seg >= 0.9999 and prob <= 1e-3
    # the comparison is sensitive: another model (other seeds) does not agree
    other = Predictor.from_model_dir(make_model(folds=(0, 1), seed=7), device="cpu", use_mirroring=mirroring,
                                     backend="onnxruntime", threads=1)
    c = other.predict(img, (1.0, 1.0, 1.0), return_probabilities=True)
    assert _agree(a, c)[1] > 1e-2


def test_exported_file_predicts_like_the_model_folder(make_model, rng, tmp_path):
    model_dir = make_model(folds=(0, 1))
    path = export_onnx(model_dir, tmp_path / "out")
    assert path == tmp_path / "out" / f"{model_dir.name}.onnx" and path.is_file()
    proto = onnx.load(str(path))
    assert proto.opset_import[0].version >= OPSET
    meta = {p.key: p.value for p in proto.metadata_props}
    assert json.loads(meta["patch_size"]) == [16, 16, 16]
    assert json.loads(meta["labels"]) == {"background": 0, "liver": 1, "tumour": 2}
    assert json.loads(meta["folds"]) == ["0", "1"] and json.loads(meta["mirror_axes"]) == [0, 1, 2]
    assert json.loads(meta["spacing"]) == [1.0, 1.0, 1.0]
    assert json.loads(meta["normalization"])[0]["name"] == "zscore"
    dims = proto.graph.input[0].type.tensor_type.shape.dim
    assert dims[0].dim_param == "tiles" and [d.dim_value for d in dims[1:]] == [1, 16, 16, 16]
    img = _image(rng)
    a = Predictor.from_model_dir(model_dir, device="cpu").predict(img, (1.0, 1.0, 1.0), return_probabilities=True)
    pred = Predictor.from_model_dir(path, backend="onnxruntime", threads=1)
    assert pred.model.folds == ("0", "1") and pred.options.mirror_axes == (0, 1, 2)
    b = pred.predict(img, (1.0, 1.0, 1.0), return_probabilities=True)
    seg, prob = _agree(a, b)
    assert seg >= 0.9999 and prob <= 1e-3


def test_export_selected_fold_and_checkpoint(make_model, tmp_path):
    model_dir = make_model(folds=(0, 1))
    path = export_onnx(model_dir, tmp_path / "m.onnx", folds=[1], checkpoint_name="checkpoint_final.pth")
    assert load_onnx_model(path, threads=1).folds == ("1",)
    with pytest.raises(CheckpointError, match="Fold 3"):
        export_onnx(model_dir, tmp_path / "x.onnx", folds=[3])


def test_onnx_file_needs_an_onnx_backend(make_model, tmp_path):
    path = export_onnx(make_model(), tmp_path / "m.onnx", verify=False)
    with pytest.raises(UsageError, match="--backend onnxruntime or openvino"):
        Predictor.from_model_dir(path)


def _rewrite_meta(src: Path, dst: Path, **changes: str | None) -> Path:
    proto = onnx.load(str(src))
    meta = {p.key: p.value for p in proto.metadata_props}
    for k, v in changes.items():
        k = k.replace("__", ".")
        if v is None:
            meta.pop(k, None)
        else:
            meta[k] = v
    del proto.metadata_props[:]
    onnx.helper.set_model_props(proto, meta)
    onnx.save(proto, str(dst))
    return dst


def test_untrusted_onnx_files_are_validated(make_model, tmp_path):
    path = export_onnx(make_model(), tmp_path / "m.onnx", verify=False)
    with pytest.raises(CheckpointError, match="not exported by autounet"):
        load_onnx_model(_rewrite_meta(path, tmp_path / "a.onnx", autounet__format=None))
    with pytest.raises(CheckpointError, match="not valid JSON"):
        load_onnx_model(_rewrite_meta(path, tmp_path / "b.onnx", autounet__plans="{oops"))
    with pytest.raises(CheckpointError, match="do not fit the metadata"):
        meta_plans = json.loads({p.key: p.value for p in onnx.load(str(path)).metadata_props}["autounet.plans"])
        meta_plans["configurations"]["3d_fullres"]["patch_size"] = [32, 32, 32]
        load_onnx_model(_rewrite_meta(path, tmp_path / "c.onnx", autounet__plans=json.dumps(meta_plans)))
    with pytest.raises(CheckpointError, match="mirror_axes"):
        load_onnx_model(_rewrite_meta(path, tmp_path / "d.onnx", mirror_axes="[5]"))
    (tmp_path / "e.onnx").write_bytes(b"not a protobuf at all")
    with pytest.raises(CheckpointError, match="not a readable ONNX model"):
        load_onnx_model(tmp_path / "e.onnx")


def test_2d_model_with_onnxruntime(make_model, rng):
    model_dir = make_model("2d")
    img = _image(rng, shape=(5, 24, 20))
    a = Predictor.from_model_dir(model_dir, device="cpu").predict(img, (1.0, 1.0, 1.0), return_probabilities=True)
    b = Predictor.from_model_dir(model_dir, backend="onnxruntime", threads=1).predict(
        img, (1.0, 1.0, 1.0), return_probabilities=True)
    seg, prob = _agree(a, b)
    assert seg >= 0.9999 and prob <= 1e-3


def test_cli_predict_backend_onnxruntime(make_model, rng, tmp_path):
    from autounet.cli import main
    from autounet.io import ImageGeometry, read_segmentation, write_image

    model_dir = make_model()
    inputs = tmp_path / "in"
    inputs.mkdir()
    write_image(_image(rng), inputs / "case_0000.nii.gz", ImageGeometry(spacing=(1.0, 1.0, 1.0)))
    assert main(["predict", "-i", str(inputs), "-o", str(tmp_path / "pt"), "-m", str(model_dir),
                 "--device", "cpu"]) == 0
    assert main(["predict", "-i", str(inputs), "-o", str(tmp_path / "ort"), "-m", str(model_dir),
                 "--backend", "onnxruntime", "--threads", "1"]) == 0
    onnx_file = export_onnx(model_dir, tmp_path / "m.onnx")
    assert main(["predict", "-i", str(inputs), "-o", str(tmp_path / "file"), "-m", str(onnx_file),
                 "--backend", "onnxruntime"]) == 0
    a, _ = read_segmentation(tmp_path / "pt" / "case.nii.gz")
    for other in ("ort", "file"):
        b, _ = read_segmentation(tmp_path / other / "case.nii.gz")
        assert (a == b).mean() >= 0.9999
    args = json.loads((tmp_path / "ort" / "predict_args.json").read_text(encoding="utf-8"))
    assert args["settings"]["backend"] == "onnxruntime"


def test_int8_opt_in_writes_a_quantized_model(make_model, rng, tmp_path):
    from autounet.io import ImageGeometry, write_image

    model_dir = make_model()
    cases = []
    for i in range(2):
        f = tmp_path / f"cal{i}_0000.nii.gz"
        write_image(_image(rng), f, ImageGeometry(spacing=(1.0, 1.0, 1.0)))
        cases.append([f])
    path = export_onnx(model_dir, tmp_path / "m.onnx", int8_calibration=cases)
    int8 = tmp_path / "m.int8.onnx"
    proto = onnx.load(str(int8))
    assert any(n.op_type == "QuantizeLinear" for n in proto.graph.node)
    meta = {p.key: p.value for p in proto.metadata_props}
    assert meta["quantization"].startswith("int8") and meta["patch_size"] == "[16, 16, 16]"
    img = _image(rng)
    a = Predictor.from_model_dir(path, backend="onnxruntime", threads=1).predict(img, (1.0, 1.0, 1.0),
                                                                                 return_probabilities=True)
    b = Predictor.from_model_dir(int8, backend="onnxruntime", threads=1).predict(img, (1.0, 1.0, 1.0),
                                                                                 return_probabilities=True)
    assert float(np.abs(a.probabilities - b.probabilities).max()) < 0.2  # quantized, yet close
    assert not np.array_equal(a.probabilities, b.probabilities)  # and really a different (int8) model


def test_openvino_backend_reproduces_torch(make_model, rng):
    pytest.importorskip("openvino")
    from autounet.inference.onnx_runtime import OpenVinoNetwork

    model_dir = make_model(folds=(0, 1))
    img = _image(rng)
    a = Predictor.from_model_dir(model_dir, device="cpu").predict(img, (1.0, 1.0, 1.0), return_probabilities=True)
    pred = Predictor.from_model_dir(model_dir, device="cpu", backend="openvino", threads=1)
    assert all(isinstance(n, OpenVinoNetwork) for n in pred.model.networks)
    b = pred.predict(img, (1.0, 1.0, 1.0), return_probabilities=True)
    seg, prob = _agree(a, b)
    assert seg >= 0.9999 and prob <= 1e-3


def test_exported_file_runs_on_openvino(make_model, rng, tmp_path):
    pytest.importorskip("openvino")
    from autounet.inference.onnx_runtime import OpenVinoNetwork

    model_dir = make_model(folds=(0, 1))
    path = export_onnx(model_dir, tmp_path / "m.onnx")
    img = _image(rng)
    a = Predictor.from_model_dir(model_dir, device="cpu").predict(img, (1.0, 1.0, 1.0), return_probabilities=True)
    pred = Predictor.from_model_dir(path, backend="openvino", threads=1)
    assert all(isinstance(n, OpenVinoNetwork) for n in pred.model.networks)
    assert pred.model.folds == ("0", "1")
    b = pred.predict(img, (1.0, 1.0, 1.0), return_probabilities=True)
    seg, prob = _agree(a, b)
    assert seg >= 0.9999 and prob <= 1e-3


def test_cascade_with_onnxruntime(make_model, rng, tmp_path):
    make_model("3d_lowres", seed=3)
    cascade_dir = make_model("3d_cascade_fullres", seed=7)
    img = _image(rng)
    a = Predictor.from_model_dir(cascade_dir, device="cpu", use_mirroring=False).predict(img, (1.0, 1.0, 1.0))
    pred = Predictor.from_model_dir(cascade_dir, use_mirroring=False, backend="onnxruntime", threads=1)
    assert pred.previous_stage is not None and pred.previous_stage.backend == "onnxruntime"
    b = pred.predict(img, (1.0, 1.0, 1.0))
    assert (a.segmentation == b.segmentation).mean() >= 0.9999
    with pytest.raises(UsageError, match="cascade stage"):
        load_onnx_model(export_onnx(cascade_dir, tmp_path / "c.onnx", verify=False))
