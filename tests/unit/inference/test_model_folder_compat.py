"""Model folders both ways: mirroring axes as the checkpoint says, reference-layout folders (plans + names)."""

from __future__ import annotations

import json

import numpy as np
import torch

from autounet.inference import Predictor
from autounet.inference.model import load_model
from autounet.workspace import PLANS_JSON, fold_dir_name


def _image(rng, shape=(20, 23, 18)):
    img = rng.normal(size=(1, *shape)).astype(np.float32)
    img[:, 5:12, 6:15, 4:10] += 3
    return img


def test_mirroring_axes_none_means_no_test_time_mirroring(make_model, rng):
    """A checkpoint with ``inference_allowed_mirroring_axes = None`` is never mirrored (as in the reference)."""
    model_dir = make_model(mirroring=False, seed=3)
    assert load_model(model_dir, device=torch.device("cpu")).mirror_axes == ()
    pred = Predictor.from_model_dir(model_dir, device="cpu")  # mirroring requested, the model forbids it
    assert pred.options.mirror_axes == ()
    img = _image(rng)
    got = pred.predict_logits(torch.from_numpy(img))
    plain = Predictor.from_model_dir(model_dir, device="cpu", use_mirroring=False).predict_logits(
        torch.from_numpy(img))
    torch.testing.assert_close(got, plain)
    path = model_dir / fold_dir_name(0) / "checkpoint_final.pth"
    content = torch.load(path, weights_only=True)
    content["inference_allowed_mirroring_axes"] = (0, 1, 2)
    torch.save(content, path)
    mirrored = Predictor.from_model_dir(model_dir, device="cpu")
    assert mirrored.options.mirror_axes == (0, 1, 2)
    assert not torch.allclose(mirrored.predict_logits(torch.from_numpy(img)), plain)


def test_only_allowed_axes_are_mirrored(make_model):
    model_dir = make_model(mirror_axes=(1, 2))
    assert Predictor.from_model_dir(model_dir, device="cpu").options.mirror_axes == (1, 2)


def test_reference_layout_folder_predicts_like_ours(make_model, rng, tmp_path):
    """The same weights stored the way `autounet train` writes them (nnU-Net plans + names) predict the same."""
    ours = make_model(seed=5)
    ref = make_model(seed=5, trainer="nnUNetTrainerRefLayout", reference_layout=True)
    plans = json.loads((ref / PLANS_JSON).read_text(encoding="utf-8"))
    assert "schema" not in plans and "architecture" in plans["configurations"]["3d_fullres"]
    keys = torch.load(ref / fold_dir_name(0) / "checkpoint_final.pth", weights_only=True)["network_weights"]
    assert any(".all_modules." in k for k in keys) and any(k.startswith("decoder.encoder.") for k in keys)
    img = _image(rng)
    a = Predictor.from_model_dir(ours, device="cpu", use_mirroring=False).predict(img, (1.0, 1.0, 1.0))
    b = Predictor.from_model_dir(ref, device="cpu", use_mirroring=False).predict(img, (1.0, 1.0, 1.0))
    np.testing.assert_array_equal(a.segmentation, b.segmentation)


def test_training_writes_reference_plans_and_names_with_fallback(caplog) -> None:
    """What `autounet train` stores: nnU-Net's plans schema and names; ours when there is no equivalent."""
    import dataclasses

    from autounet import networks
    from autounet.inference.testing import tiny_plans
    from autounet.training.build import portable_plans
    from autounet.training.loop import portable_weights

    plans = tiny_plans()
    stored = portable_plans(plans)
    assert "schema" not in stored and stored["configurations"]["3d_fullres"]["architecture"]["network_class_name"] \
        .endswith("PlainConvUNet")
    spec = plans.configuration("3d_fullres").network
    net = networks.build(spec, in_channels=1, num_outputs=3)
    ref = portable_weights(net.state_dict(), spec)
    assert any(k.startswith("decoder.encoder.") for k in ref)
    net.load_state_dict(networks.convert_reference_state_dict(ref))
    ours = net.state_dict()
    odd = dataclasses.replace(spec, name="some_other_net")
    assert list(portable_weights(ours, odd)) == list(ours)
    assert "keep autounet names" in caplog.text
    assert portable_weights(ours, None) is ours
