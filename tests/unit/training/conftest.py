"""Tiny in-memory stand-ins for the preprocessed case store (the loader only needs open/properties/case_ids)."""

from __future__ import annotations

from typing import Any

import numpy as np


class FakeStore:
    """Cases with random images and a cube of label 1 (and a smaller cube of label 2)."""

    def __init__(self, n_cases: int = 4, shape: tuple[int, ...] = (20, 24, 28), channels: int = 1,
                 seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.cases: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.props: dict[str, dict[str, Any]] = {}
        for i in range(n_cases):
            data = rng.normal(size=(channels, *shape)).astype(np.float32)
            seg = np.zeros((1, *shape), np.int16)
            lo = [int(rng.integers(0, s // 2)) for s in shape]
            seg[(0, *[slice(a, a + max(2, s // 4)) for a, s in zip(lo, shape)])] = 1
            seg[(0, *[slice(a, a + 2) for a in lo])] = 2
            seg[0, 0] = -1  # a slab outside the nonzero mask
            data[:, seg[0] == 1] += 2.0
            name = f"case_{i:02d}"
            self.cases[name] = (data, seg)
            locs = {lab: np.argwhere(seg == lab) for lab in (1, 2)}
            self.props[name] = {"class_locations": locs}

    def case_ids(self) -> list[str]:
        return sorted(self.cases)

    def properties(self, case: str) -> dict[str, Any]:
        return self.props[case]

    def open(self, case: str) -> tuple[np.ndarray, np.ndarray]:
        return self.cases[case]


import pytest  # noqa: E402


@pytest.fixture
def make_store() -> type[FakeStore]:
    """The FakeStore class (call it with the wanted case count / shape)."""
    return FakeStore


def make_fake_run(fold_dir, *, store=None, epochs=3, iters=4, seed=3, augment=None, checkpoint_every=1,
                  val_iterations=2):
    """A complete :class:`Run` on fakes: a 2-conv network, CE loss, the real loaders, SGD and poly LR."""
    import torch

    from autounet.schemas.training import training_config
    from autounet.training.data import BatchLoader
    from autounet.training.logging import RunLogger
    from autounet.training.loop import Run

    torch.manual_seed(0)
    store = store or FakeStore(n_cases=3, shape=(12, 12, 12))
    cfg = training_config(epochs=epochs, iterations_per_epoch=iters, val_iterations=val_iterations, batch_size=2,
                          checkpoint_every=checkpoint_every, seed=seed, deterministic=True, loader_threads=1,
                          device="cpu")
    recipe = cfg.recipe
    net = torch.nn.Sequential(torch.nn.Conv3d(1, 4, 3, padding=1), torch.nn.LeakyReLU(),
                              torch.nn.Conv3d(4, 3, 1))
    opt = torch.optim.SGD(net.parameters(), lr=recipe.initial_lr, momentum=0.99, nesterov=True, weight_decay=3e-5)

    def loss_fn(out, target):
        return torch.nn.functional.cross_entropy(out, target[:, 0].long())

    def dice_stats(out, target):
        pred = out.argmax(1)
        t = target[:, 0]
        labels = torch.arange(1, 3).view(-1, 1, 1, 1, 1)
        p, g = pred[None] == labels, t[None] == labels
        return ((p & g).sum((1, 2, 3, 4)).float(), (p & ~g).sum((1, 2, 3, 4)).float(),
                (~p & g).sum((1, 2, 3, 4)).float())

    def noise(data, seg, generator):
        return data + 0.1 * torch.randn(data.shape, generator=generator), seg.clamp_min(0)

    def prepare(data, seg):
        return data, seg.clamp_min(0)

    ids = store.case_ids()
    common = dict(batch_size=2, patch_size=(8, 8, 8), final_patch_size=(8, 8, 8), oversample=0.33, seed=seed,
                  workers=1)
    return Run(fold_dir=fold_dir, config=cfg, model=net, module=net, optimizer=opt, scaler=None, loss_fn=loss_fn,
               dice_stats=dice_stats, lr_at=lambda e: recipe.initial_lr * (1 - e / recipe.epochs) ** 0.9,
               augment=augment or noise, prepare=prepare,
               train_loader=BatchLoader(store, ids, **common), val_loader=BatchLoader(store, ids, stream=1, **common),
               device=torch.device("cpu"), seed=seed, checkpoint_extra={"trainer_name": "fake"},
               logger=RunLogger(fold_dir))


@pytest.fixture
def fake_run():
    """Factory of complete fake runs (``fake_run(fold_dir, epochs=..., ...)``)."""
    return make_fake_run
