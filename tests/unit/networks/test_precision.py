"""Which reduced precision runs where: training's mixed precision and inference's --precision."""

from __future__ import annotations

import pytest
import torch

from autounet import precision as shared_precision
from autounet.errors import UsageError
from autounet.networks import precision
from autounet.networks.precision import autocast_dtype

CPU = torch.device("cpu")


@pytest.fixture
def native_bf16(monkeypatch):
    def set_to(value: bool) -> None:
        monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: value)
    return set_to


def test_fp32_is_never_autocast():
    assert autocast_dtype("fp32", CPU) is None and autocast_dtype("fp32", torch.device("cuda")) is None


def test_cpu_auto_is_float32_for_inference_and_bf16_for_training_where_native(native_bf16):
    native_bf16(True)
    assert autocast_dtype("auto", CPU) is None
    assert autocast_dtype("auto", CPU, cpu_auto=True) is torch.bfloat16
    assert autocast_dtype("bf16", CPU) is torch.bfloat16
    native_bf16(False)
    assert autocast_dtype("auto", CPU, cpu_auto=True) is None


def test_bf16_on_a_cpu_without_native_bf16_is_refused(native_bf16):
    native_bf16(False)
    with pytest.raises(UsageError, match="no native bf16"):
        autocast_dtype("bf16", CPU)


def test_fp16_only_on_cuda_and_unknown_names_refused():
    with pytest.raises(UsageError, match="only available on CUDA"):
        autocast_dtype("fp16", CPU)
    with pytest.raises(UsageError, match="not available on mps"):
        autocast_dtype("bf16", torch.device("mps"))
    assert autocast_dtype("auto", torch.device("mps")) is None
    with pytest.raises(UsageError, match="Unknown precision"):
        autocast_dtype("int4", CPU)


def test_cuda_auto_picks_bf16_where_supported(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: False)
    assert autocast_dtype("auto", torch.device("cuda")) is torch.float16
    assert autocast_dtype("bf16", torch.device("cuda")) is torch.bfloat16
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert autocast_dtype("auto", torch.device("cuda:1")) is torch.bfloat16


def test_cpu_flags_are_read_from_cpuinfo(monkeypatch, tmp_path):
    fake = tmp_path / "cpuinfo"
    fake.write_text("processor : 0\nflags : fpu sse avx2 avx512f\n", encoding="utf-8")
    real_path = shared_precision.Path
    monkeypatch.setattr(shared_precision, "Path", lambda p: fake if p == "/proc/cpuinfo" else real_path(p))
    def clear() -> None:
        precision.cpu_has_native_bf16.cache_clear()
        shared_precision.cpu_flags_have_bf16.cache_clear()

    clear()
    try:
        assert precision.cpu_has_native_bf16() is False
        assert shared_precision.cpu_flags_have_bf16() is False
        fake.write_text("processor : 0\nflags : fpu avx512f avx512_bf16\n", encoding="utf-8")
        clear()
        assert shared_precision.cpu_flags_have_bf16() is True
        assert precision.cpu_has_native_bf16() is bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    finally:
        clear()


def test_training_precision(native_bf16):
    from autounet.training.build import training_amp_dtype

    native_bf16(True)
    assert training_amp_dtype(True, CPU) is torch.bfloat16
    assert training_amp_dtype(False, CPU) is None
    assert training_amp_dtype(True, torch.device("cuda")) is torch.float16  # the reference's AMP, with a scaler
    native_bf16(False)
    assert training_amp_dtype(True, CPU) is None


def test_predict_flag_offers_exactly_the_known_precisions():
    from autounet.cli import build_parser

    predict = build_parser()._subparsers._group_actions[0].choices["predict"]
    (action,) = [a for a in predict._actions if "--precision" in a.option_strings]
    assert tuple(action.choices) == precision.PRECISIONS
