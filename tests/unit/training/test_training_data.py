"""Batch loader: deterministic batches, padding, 2D slices, cascade channel, forced samples."""

from __future__ import annotations

import numpy as np
import torch

from autounet.training.data import BatchLoader, crop_and_pad


def _loader(store, **kw: object) -> BatchLoader:
    args = dict(batch_size=3, patch_size=(16, 16, 16), final_patch_size=(12, 12, 12), oversample=0.33, seed=7,
                workers=2, prefetch=3)
    args.update(kw)
    return BatchLoader(store, store.case_ids(), **args)  # type: ignore[arg-type]


def test_batches_do_not_depend_on_workers_or_start(make_store) -> None:
    store = make_store()
    a, b = _loader(store, workers=0), _loader(store, workers=2)
    try:
        first = list(a.batches(epoch=1, start=0, stop=5))
        second = list(b.batches(epoch=1, start=0, stop=5))
        tail = list(b.batches(epoch=1, start=3, stop=5))
    finally:
        a.close()
        b.close()
    for x, y in zip(first, second):
        assert x.keys == y.keys and np.array_equal(x.data, y.data) and np.array_equal(x.seg, y.seg)
    assert np.array_equal(tail[0].data, first[3].data)
    assert first[0].data.shape == (3, 1, 16, 16, 16) and first[0].data.dtype == np.float32
    assert first[0].seg.dtype == np.int16
    # different epochs give different batches
    other = _loader(store, workers=0)
    assert not np.array_equal(next(iter(other.batches(2, 0, 1))).data, first[0].data)


def test_forced_samples_contain_foreground(make_store) -> None:
    store = make_store(n_cases=6, shape=(40, 40, 40))
    loader = _loader(store, batch_size=3, workers=0)
    for batch in loader.batches(0, 0, 30):
        assert batch.forced.tolist() == [False, False, True]
        assert (batch.seg[2] > 0).any()


def test_crop_and_pad_values() -> None:
    arr = np.arange(2 * 4 * 5, dtype=np.float32).reshape(2, 4, 5)
    out = crop_and_pad(arr, ((-1, 3), (3, 7)), -1, np.int16)
    assert out.shape == (2, 4, 4) and out.dtype == np.int16
    assert (out[:, 0] == -1).all() and (out[:, :, 2:] == -1).all()
    assert np.array_equal(out[:, 1:, :2], arr[:, :3, 3:5].astype(np.int16))
    assert not crop_and_pad(arr, ((10, 12), (0, 2)), -1, np.int16).any()  # fully outside: zeros


def test_two_dimensional_patches_squeeze_the_slice_axis(make_store) -> None:
    store = make_store(shape=(6, 30, 30))
    loader = _loader(store, patch_size=(20, 20), final_patch_size=(16, 16), workers=0)
    batch = next(iter(loader.batches(0, 0, 1)))
    assert batch.data.shape == (3, 1, 20, 20) and batch.seg.shape == (3, 1, 20, 20)


def test_cascade_previous_stage_is_second_seg_channel(tmp_path, make_store) -> None:
    from autounet.training.data import PreviousStage

    store = make_store(n_cases=2)
    for case, (_, seg) in store.cases.items():
        np.save(tmp_path / f"{case}.npy", np.clip(seg[0], 0, None).astype(np.uint8))
    loader = _loader(store, previous_stage=PreviousStage(tmp_path), workers=0, patch_size=(12, 12, 12))
    batch = next(iter(loader.batches(0, 0, 1)))
    assert batch.seg.shape == (3, 2, 12, 12, 12)
    seg, prev = batch.seg[:, 0], batch.seg[:, 1]
    inside = seg >= 0
    assert np.array_equal(prev[inside & (seg > 0)], seg[inside & (seg > 0)])


def test_pin_memory_returns_pinned_tensors_of_the_same_batch(make_store, monkeypatch) -> None:
    store = make_store(n_cases=2)
    plain = next(iter(_loader(store, workers=0).batches(0, 0, 1)))
    pinned_calls: list[tuple[int, ...]] = []
    if not torch.cuda.is_available():  # CPU-only torch cannot pin: record the calls instead
        def fake_pin(self: torch.Tensor) -> torch.Tensor:
            pinned_calls.append(tuple(self.shape))
            return self.clone()

        monkeypatch.setattr(torch.Tensor, "pin_memory", fake_pin)
    batch = next(iter(_loader(store, workers=0, pin_memory=True).batches(0, 0, 1)))
    assert isinstance(batch.data, torch.Tensor) and isinstance(batch.seg, torch.Tensor)
    assert batch.data.dtype == torch.float32 and batch.seg.dtype == torch.int16
    np.testing.assert_array_equal(batch.data.numpy(), plain.data)
    np.testing.assert_array_equal(batch.seg.numpy(), plain.seg)
    assert batch.keys == plain.keys and 0 <= batch.read_seconds < 60
    if torch.cuda.is_available():
        assert batch.data.is_pinned() and batch.seg.is_pinned()
    else:
        assert pinned_calls == [tuple(plain.data.shape), tuple(plain.seg.shape)]
