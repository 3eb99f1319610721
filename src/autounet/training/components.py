"""Training components by name: optimisers, learning-rate schedules and losses.

Networks are registered in ``networks.NETWORKS`` and named (with their parameters) in the plans.

A recipe names each component and gives its parameters (``TrainingRecipe.optimizer`` + ``optimizer_params``, ...).
A component is a registered function whose keyword parameters (after the fixed ones) are its settable parameters,
with the defaults it uses. Adding an optimiser is one registered function::

    @OPTIMIZERS.register("rmsprop")
    def rmsprop(params, *, lr, alpha=0.99, weight_decay=0.0):
        return torch.optim.RMSprop(params, lr=lr, alpha=alpha, weight_decay=weight_decay)

then ``--optimizer rmsprop --optimizer-param alpha=0.9`` (CLI) or ``optimizer="rmsprop"`` (API) selects it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import torch

from autounet.errors import ConfigError
from autounet.registry import Registry
from autounet.schemas.training import TrainingRecipe
from autounet.training import losses, schedules

OPTIMIZERS: Registry[Callable[..., torch.optim.Optimizer]] = Registry("optimiser")
SCHEDULES: Registry[Callable[..., float]] = Registry("learning-rate schedule")
LOSSES: Registry[Callable[..., torch.nn.Module]] = Registry("loss")

#: parameters the trainer passes itself (not settable through ``*_params``)
_FIXED = {"optimiser": ("params", "lr"), "learning-rate schedule": ("epoch", "epochs", "initial_lr"),
          "loss": ("labels", "batch_dice", "deep_supervision_scales", "ddp", "compiled")}


@OPTIMIZERS.register("sgd", aliases=("SGD",))
def sgd(params: Iterable[Any], *, lr: float, momentum: float = 0.99, weight_decay: float = 3e-5,
        nesterov: bool = True) -> torch.optim.Optimizer:
    """SGD with Nesterov momentum: the reference recipe's optimiser."""
    return torch.optim.SGD(params, lr=lr, momentum=momentum, nesterov=nesterov, weight_decay=weight_decay)


@OPTIMIZERS.register("adamw", aliases=("AdamW",))
def adamw(params: Iterable[Any], *, lr: float, weight_decay: float = 0.01, betas: Sequence[float] = (0.9, 0.999),
          eps: float = 1e-8) -> torch.optim.Optimizer:
    """AdamW (decoupled weight decay); use a smaller ``--lr`` than SGD's (e.g. 1e-3 or 3e-4)."""
    b1, b2 = (float(b) for b in betas)
    return torch.optim.AdamW(params, lr=lr, betas=(b1, b2), eps=eps, weight_decay=weight_decay)


@SCHEDULES.register("poly", aliases=("PolyLRScheduler",))
def poly(epoch: int, *, epochs: int, initial_lr: float, exponent: float = 0.9) -> float:
    """``initial_lr * (1 - epoch / epochs) ** exponent``, set at the start of each epoch (the reference's)."""
    return schedules.poly_lr(epoch, epochs, initial_lr, exponent=exponent)


@SCHEDULES.register("constant")
def constant(epoch: int, *, epochs: int, initial_lr: float) -> float:
    """The initial learning rate throughout."""
    del epoch, epochs
    return initial_lr


@LOSSES.register("dice_ce", aliases=("DC_and_CE_loss",))
def dice_ce(labels: Any, *, batch_dice: bool, deep_supervision_scales: Any, ddp: bool, compiled: bool,
            weight_ce: float = 1.0, weight_dice: float = 1.0, smooth: float = losses.DICE_SMOOTH) -> torch.nn.Module:
    """Dice + cross-entropy (Dice + BCE for region labels), weighted over the deep-supervision outputs."""
    return losses.build_loss(labels, batch_dice=batch_dice, deep_supervision_scales=deep_supervision_scales, ddp=ddp,
                             compiled=compiled, weight_ce=weight_ce, weight_dice=weight_dice, smooth=smooth)


def component(registry: Registry[Any], name: str, params: Mapping[str, Any]) -> Callable[..., Any]:
    """The function registered as ``name`` with ``params`` bound; unknown parameters raise ``ConfigError``."""
    fn = registry.get(name)
    settable = parameters(registry, name)
    unknown = sorted(set(params) - set(settable))
    if unknown:
        known = ", ".join(f"{k}={v!r}" for k, v in settable.items()) or "none"
        raise ConfigError(f"Unknown parameter(s) {', '.join(unknown)} of {registry.kind} {name!r}. Known: {known}.")

    def bound(*args: Any, **fixed: Any) -> Any:
        return fn(*args, **fixed, **params)

    return bound


def parameters(registry: Registry[Any], name: str) -> dict[str, Any]:
    """The settable parameters of a registered component and their defaults."""
    fixed = _FIXED[registry.kind]
    return {p.name: p.default for p in inspect.signature(registry.get(name)).parameters.values()
            if p.name not in fixed and p.kind == inspect.Parameter.KEYWORD_ONLY}


def check_recipe(recipe: TrainingRecipe) -> None:
    """Every component of ``recipe`` is registered and takes the given parameters (fails before any work)."""
    component(OPTIMIZERS, recipe.optimizer, recipe.optimizer_params)
    component(SCHEDULES, recipe.schedule, recipe.schedule_params)
    component(LOSSES, recipe.loss, recipe.loss_params)


def build_optimizer(recipe: TrainingRecipe, params: Iterable[Any]) -> torch.optim.Optimizer:
    """The recipe's optimiser over ``params`` at ``initial_lr``."""
    return component(OPTIMIZERS, recipe.optimizer, recipe.optimizer_params)(params, lr=recipe.initial_lr)


def build_schedule(recipe: TrainingRecipe) -> Callable[[int], float]:
    """Learning rate of an epoch under the recipe's schedule."""
    fn = component(SCHEDULES, recipe.schedule, recipe.schedule_params)

    def lr_at(epoch: int) -> float:
        return float(fn(epoch, epochs=recipe.epochs, initial_lr=recipe.initial_lr))

    return lr_at


def build_loss(recipe: TrainingRecipe, labels: Any, *, batch_dice: bool, deep_supervision_scales: Any, ddp: bool,
               compiled: bool) -> torch.nn.Module:
    """The recipe's loss for ``labels``."""
    return component(LOSSES, recipe.loss, recipe.loss_params)(
        labels, batch_dice=batch_dice, deep_supervision_scales=deep_supervision_scales, ddp=ddp, compiled=compiled)


def components_markdown() -> str:
    """The Markdown table of every registered optimiser, schedule and loss with its parameters (docs/training.md)."""
    rows = ["| kind (recipe field) | name | parameters (defaults) | what it is |", "|---|---|---|---|"]
    for registry, field_name in ((OPTIMIZERS, "optimizer"), (SCHEDULES, "schedule"), (LOSSES, "loss")):
        for name in registry.names():
            params = ", ".join(f"`{k}={v!r}`" for k, v in parameters(registry, name).items()) or "none"
            doc = (inspect.getdoc(registry.get(name)) or "").splitlines()[0].replace("``", "`")
            rows.append(f"| {registry.kind} (`{field_name}`) | `{name}` | {params} | {doc} |")
    return "\n".join(rows) + "\n"


__all__ = ["LOSSES", "OPTIMIZERS", "SCHEDULES", "build_loss", "build_optimizer", "build_schedule", "check_recipe",
           "component", "components_markdown", "parameters"]
