"""Predictor on random-weight tiny models: arrays, files, folders, probabilities, cascades, 2D, errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from autounet.errors import CheckpointError, UsageError
from autounet.inference import Predictor, export_logits, predict_sliding_window
from autounet.inference.testing import tiny_dataset
from autounet.io import ImageGeometry, read_images, read_segmentation, write_image
from autounet.workspace import fold_dir_name

GEOMETRY = ImageGeometry(spacing=(1.0, 1.0, 1.0), origin=(10.0, -5.0, 3.0),
                         direction=(0.0, 1.0, 0.0, 1.0, 0.0, 0.0, 0.0, 0.0, -1.0))


def _image(rng, shape=(20, 23, 18), channels=1):
    img = rng.normal(size=(channels, *shape)).astype(np.float32)
    img[:, 5:12, 6:15, 4:10] += 3
    return img


def _write_cases(folder: Path, rng, names=("a", "b", "c"), channels=1, ending=".nii.gz"):
    folder.mkdir(parents=True, exist_ok=True)
    images = {}
    for n in names:
        img = _image(rng, channels=channels)
        images[n] = img
        for c in range(channels):
            write_image(img[c:c + 1], folder / f"{n}_{c:04d}{ending}", GEOMETRY)
    return images


def test_predict_array_matches_the_stage_functions(make_model, rng):
    model_dir = make_model(folds=(0, 1))
    pred = Predictor.from_model_dir(model_dir, device="cpu", tile_batch=3)
    assert pred.model.folds == ("0", "1") and pred.options.mirror_axes == (0, 1, 2)
    img = _image(rng)
    out = pred.predict(img, (1.0, 1.0, 1.0), return_probabilities=True)
    assert out.segmentation.shape == img.shape[1:] and out.segmentation.dtype == np.uint8
    assert out.probabilities.shape == (3, *img.shape[1:])
    np.testing.assert_array_equal(out.probabilities.argmax(0), out.segmentation)
    # the same through the lower-level functions
    loaded = pred.preprocess(img, ImageGeometry(spacing=(1.0, 1.0, 1.0)))
    logits = predict_sliding_window(pred.model.networks, loaded.data, patch_size=(16, 16, 16), num_outputs=3,
                                    options=pred.options, device=torch.device("cpu"))
    again = export_logits(logits, loaded.case, config_spacing=(1, 1, 1), labels=pred.model.labels)
    np.testing.assert_array_equal(again.segmentation, out.segmentation)


def test_anisotropic_input_is_resampled_back_to_its_own_grid(make_model, rng):
    pred = Predictor.from_model_dir(make_model(), device="cpu", use_mirroring=False)
    img = _image(rng, shape=(9, 30, 25))
    out = pred.predict(img, (2.5, 0.8, 0.8))
    assert out.segmentation.shape == (9, 30, 25)


def test_transposed_plans_give_the_input_axis_order(make_model, rng):
    pred = Predictor.from_model_dir(make_model(transpose=(2, 0, 1)), device="cpu", use_mirroring=False)
    img = _image(rng, shape=(12, 20, 26))
    assert pred.predict(img, (1.0, 1.0, 1.0)).segmentation.shape == (12, 20, 26)


def test_no_tta_and_folds_and_checkpoint_errors(make_model):
    model_dir = make_model(folds=(0, 1, "all"))
    assert Predictor.from_model_dir(model_dir, device="cpu").model.folds == ("0", "1")  # fold_all excluded
    assert Predictor.from_model_dir(model_dir, folds=["all"], device="cpu").model.folds == ("all",)
    assert Predictor.from_model_dir(model_dir, device="cpu", use_mirroring=False).options.mirror_axes == ()
    with pytest.raises(CheckpointError, match=r"Fold 3 has no checkpoint_final\.pth"):
        Predictor.from_model_dir(model_dir, folds=(3,), device="cpu")
    with pytest.raises(CheckpointError, match=r"holds checkpoint_best\.pth"):
        Predictor.from_model_dir(model_dir, checkpoint="best", device="cpu")
    with pytest.raises(UsageError, match="Model folder not found"):
        Predictor.from_model_dir(model_dir / "nope", device="cpu")


def test_wrong_channel_count_is_a_clear_error(make_model, rng):
    pred = Predictor.from_model_dir(make_model(), device="cpu")
    with pytest.raises(UsageError, match="c = 1 channel"):
        pred.predict(_image(rng, channels=2), (1.0, 1.0, 1.0))


def test_predict_folder_geometry_skip_overwrite_failures_and_probabilities(make_model, rng, tmp_path):
    from autounet.ensembling.probabilities import read_probabilities

    pred = Predictor.from_model_dir(make_model(), device="cpu", use_mirroring=False)
    src = tmp_path / "in"
    _write_cases(src, rng)
    (src / "broken_0000.nii.gz").write_bytes(b"not a nifti")
    out = tmp_path / "out"
    report = pred.predict_folder(src, out, save_probabilities=True)
    assert sorted(report.written) == ["a", "b", "c"] and [f.case_id for f in report.failed] == ["broken"]
    assert "broken_0000.nii.gz" in report.failed[0].message
    seg, geom = read_segmentation(out / "a.nii.gz")
    assert seg.shape == (1, 20, 23, 18)
    assert geom.spacing == GEOMETRY.spacing and geom.origin == GEOMETRY.origin
    np.testing.assert_allclose(geom.direction, GEOMETRY.direction, atol=1e-12)
    probs, record = read_probabilities(out, "a")
    assert probs.shape == (3, 20, 23, 18) and record.file_ending == ".nii.gz"
    np.testing.assert_array_equal(probs.argmax(0), seg[0])
    for name in ("dataset.json", "plans.json", "predict_args.json"):
        assert (out / name).is_file()
    # second run: existing outputs are skipped, --overwrite predicts again
    (src / "broken_0000.nii.gz").unlink()
    before = (out / "a.nii.gz").stat().st_mtime_ns
    again = pred.predict_folder(src, out, save_probabilities=True)
    assert sorted(again.skipped) == ["a", "b", "c"] and not again.written
    forced = pred.predict_folder(src, out, overwrite=True, part=1, parts=2)
    assert forced.written == ["b"] and (out / "a.nii.gz").stat().st_mtime_ns == before


def test_missing_channel_is_reported_per_case(make_model, rng, tmp_path):
    pred = Predictor.from_model_dir(make_model(channels=2), device="cpu", use_mirroring=False)
    src = tmp_path / "in"
    _write_cases(src, rng, names=("a", "b"), channels=2)
    (src / "b_0001.nii.gz").unlink()
    report = pred.predict_folder(src, tmp_path / "out")
    assert report.written == ["a"] and report.failed[0].case_id == "b"
    assert "missing b_0001.nii.gz" in report.failed[0].message


def test_output_format_and_predict_file(make_model, rng, tmp_path):
    pred = Predictor.from_model_dir(make_model(), device="cpu", use_mirroring=False)
    src = tmp_path / "in"
    _write_cases(src, rng, names=("a",))
    report = pred.predict_folder(src, tmp_path / "out", output_format="nrrd")
    assert report.written == ["a"] and (tmp_path / "out" / "a.nrrd").is_file()
    seg_nrrd, geom = read_segmentation(tmp_path / "out" / "a.nrrd")
    assert geom.origin == GEOMETRY.origin
    path = pred.predict_file([src / "a_0000.nii.gz"], tmp_path / "single" / "a.mha")
    seg_mha, _ = read_segmentation(path)
    np.testing.assert_array_equal(seg_mha, seg_nrrd)


def test_cascade_runs_then_reuses_the_lowres_stage(make_model, rng, tmp_path):
    make_model("3d_lowres", seed=5)
    cascade_dir = make_model("3d_cascade_fullres", seed=7)
    pred = Predictor.from_model_dir(cascade_dir, device="cpu", use_mirroring=False)
    assert pred.previous_stage is not None and pred.previous_stage.configuration_name == "3d_lowres"
    assert pred.model.in_channels == 3  # image + one-hot of the two foreground labels
    src = tmp_path / "in"
    _write_cases(src, rng, names=("a", "b"))
    out = tmp_path / "out"
    report = pred.predict_folder(src, out)
    assert sorted(report.written) == ["a", "b"]
    lowres = out / "3d_lowres"
    assert (lowres / "a.nii.gz").is_file()
    stamp = (lowres / "a.nii.gz").stat().st_mtime_ns
    pred.predict_folder(src, out, overwrite=True)
    assert (lowres / "a.nii.gz").stat().st_mtime_ns == stamp  # reused, not predicted again
    # the array API gives the same as the folder pipeline
    img, geom = read_images([src / "a_0000.nii.gz"])
    seg, _ = read_segmentation(out / "a.nii.gz")
    np.testing.assert_array_equal(pred.predict(img, geom).segmentation, seg[0])


def test_cascade_without_lowres_model_is_an_error(make_model):
    cascade_dir = make_model("3d_cascade_fullres")
    with pytest.raises(UsageError, match="Model folder not found"):
        Predictor.from_model_dir(cascade_dir, device="cpu")


def test_2d_configuration_on_png(make_model, rng, tmp_path):
    from PIL import Image

    dataset_png = tiny_dataset(file_ending=".png")
    pred = Predictor.from_model_dir(make_model("2d", dataset=dataset_png), device="cpu", tile_batch=4)
    src = tmp_path / "in"
    src.mkdir()
    pixels = (rng.uniform(size=(30, 41)) * 255).astype(np.uint8)
    Image.fromarray(pixels).save(src / "img_0000.png")
    report = pred.predict_folder(src, tmp_path / "out")
    assert report.written == ["img"]
    seg = np.asarray(Image.open(tmp_path / "out" / "img.png"))
    assert seg.shape == (30, 41) and set(np.unique(seg)) <= {0, 1, 2}


def test_regions_are_painted_in_regions_class_order(make_model, rng):
    dataset = tiny_dataset(
        labels={"background": 0, "whole": [1, 2], "core": 2}, regions_class_order=(1, 2))
    pred = Predictor.from_model_dir(make_model(dataset=dataset), device="cpu", use_mirroring=False)
    out = pred.predict(_image(rng), (1.0, 1.0, 1.0), return_probabilities=True)
    probs = out.probabilities
    expected = np.zeros(probs.shape[1:], np.uint8)
    expected[probs[0] > 0.5] = 1
    expected[probs[1] > 0.5] = 2
    np.testing.assert_array_equal(out.segmentation, expected)


def test_reference_checkpoint_keys_are_converted(make_model, rng):
    """A checkpoint whose weights use the reference's (dynamic-network-architectures) names still loads."""
    model_dir = make_model()
    path = model_dir / fold_dir_name(0) / "checkpoint_final.pth"
    content = torch.load(path, weights_only=False)
    ours = Predictor.from_model_dir(model_dir, device="cpu", use_mirroring=False)
    img = _image(rng)
    expected = ours.predict(img, (1.0, 1.0, 1.0)).segmentation
    renamed = {}
    for k, v in content["network_weights"].items():
        k2 = k.replace("encoder.stem.", "encoder.stem.convs.0.")
        renamed[k2] = v
        if k.startswith("encoder.stages."):
            renamed["decoder.encoder." + k] = v  # the reference's alias, dropped on load
    renamed["encoder.stem.all_modules.0.weight"] = content["network_weights"]["encoder.stem.conv.weight"] \
        if "encoder.stem.conv.weight" in content["network_weights"] else torch.zeros(1)
    content["network_weights"] = renamed
    torch.save(content, path)
    again = Predictor.from_model_dir(model_dir, device="cpu", use_mirroring=False)
    np.testing.assert_array_equal(again.predict(img, (1.0, 1.0, 1.0)).segmentation, expected)


@pytest.mark.parametrize(("ending", "mode"), [(".png", "RGB"), (".png", "RGBA"), (".jpg", "RGB"), (".tif", "RGB")])
def test_one_file_rgb_cases_are_predicted(make_model, rng, tmp_path, ending, mode):
    """The natural-image convention: one <case>_0000.png holds R, G, B (or RGBA): predicted like training reads it."""
    from PIL import Image

    channels = len(mode)
    dataset = tiny_dataset(channels=channels, file_ending=ending)
    model_dir = make_model("2d", channels=channels, dataset=dataset)
    src = tmp_path / "in"
    src.mkdir()
    for name in ("photo1", "photo2"):
        pixels = rng.integers(0, 255, size=(30, 26, channels), dtype=np.uint8)
        Image.fromarray(pixels, mode=mode).save(src / f"{name}_0000{ending}")
    Image.fromarray(np.zeros((30, 26), np.uint8), mode="L").save(src / f"grey_0000{ending}")
    pred = Predictor.from_model_dir(model_dir, device="cpu")
    report = pred.predict_folder(src, tmp_path / "out")
    assert sorted(report.written) == ["photo1", "photo2"]
    (failed,) = report.failed
    assert failed.case_id == "grey" and f"grey_0000{ending} hold(s) 1 channel(s) but the model needs {channels}" \
        in failed.message
    out = tmp_path / "out" / f"photo1{'.png' if ending == '.jpg' else ending}"  # segmentations are never JPEG
    seg, _ = read_segmentation(out)
    assert seg.shape[-2:] == (30, 26) and set(np.unique(seg)) <= {0, 1, 2}
