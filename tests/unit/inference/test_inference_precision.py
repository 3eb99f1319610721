"""predict --precision bf16 on a CPU with native bf16: the same sliding window in bf16 autocast."""

from __future__ import annotations

import numpy as np
import pytest

from autounet.errors import UsageError
from autounet.inference import Predictor
from autounet.networks import precision


def _image(rng, shape=(21, 26, 19)):
    img = rng.normal(size=(1, *shape)).astype(np.float32)
    img[:, 5:14, 6:18, 4:12] += 2.5
    return img


@pytest.mark.skipif(not precision.cpu_has_native_bf16(), reason="this CPU has no native bf16 (AVX512-BF16 / AMX)")
def test_cpu_bf16_is_close_to_float32_but_not_equal(make_model, rng):
    model_dir = make_model(folds=(0,))
    img = _image(rng)
    a = Predictor.from_model_dir(model_dir, device="cpu").predict(img, (1.0, 1.0, 1.0), return_probabilities=True)
    pred = Predictor.from_model_dir(model_dir, device="cpu", precision="bf16")
    assert pred.settings()["precision"] == "bf16"
    b = pred.predict(img, (1.0, 1.0, 1.0), return_probabilities=True)
    diff = float(np.abs(a.probabilities - b.probabilities).max())
    assert 0 < diff < 0.1  # really bf16, yet close
    assert float((a.segmentation == b.segmentation).mean()) > 0.98


def test_cpu_bf16_without_native_support_is_a_clear_error(make_model, rng, monkeypatch):
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    with pytest.raises(UsageError, match="no native bf16"):
        Predictor.from_model_dir(make_model(folds=(0,)), device="cpu", precision="bf16")
