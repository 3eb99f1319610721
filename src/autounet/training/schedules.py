"""Learning-rate schedules. The method uses the polynomial ("poly") decay, stepped once per epoch."""

from __future__ import annotations

from autounet.errors import ConfigError


def poly_lr(epoch: int, max_epochs: int, initial_lr: float, *, exponent: float = 0.9) -> float:
    """``initial_lr * (1 - epoch / max_epochs) ** exponent``: the reference's PolyLRScheduler value for ``epoch``.

    The reference sets this value at the start of every epoch (epoch 0 trains at ``initial_lr``).
    """
    if max_epochs < 1:
        msg = f"max_epochs must be >= 1, got {max_epochs}."
        raise ConfigError(msg)
    if not 0 <= epoch <= max_epochs:
        msg = f"epoch must be within [0, {max_epochs}], got {epoch}."
        raise ConfigError(msg)
    return initial_lr * (1 - epoch / max_epochs) ** exponent
