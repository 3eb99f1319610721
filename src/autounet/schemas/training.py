"""The settings of a training run, defined once: the recipe (what is trained) and the runtime (how it runs).

:class:`TrainingRecipe` holds what changes the trained model: the schedule sizes, the optimiser, learning-rate
schedule and loss *by registered name* with their parameters, sampling and augmentation. (The network is chosen by
name in the plans -- ``networks.NETWORKS`` -- because inference rebuilds it from the plans.)
:class:`RuntimeSettings` holds how this machine runs it: device, loader threads, compile, AMP, seed, progress.
:class:`TrainingConfig` pairs them; it is saved beside every run (``training_config.json``) and in every checkpoint.

The three are frozen pydantic dataclasses: values are validated by pydantic on construction (types, bounds, the
device pattern) and a problem is one ``ConfigError`` naming the setting (:func:`_config_errors`). They stay
dataclasses (``dataclasses.fields``, ``replace``, ``asdict`` work) because the flags and docs are generated from the
field metadata. ``training_config.json`` is read and written only by :func:`load_training_config` /
:func:`save_training_config` (and, inside checkpoints, by :meth:`TrainingConfig.from_dict` / ``to_dict``).

Each field carries its help text and CLI flag in its metadata; the ``train`` and ``run`` flags
(``autounet.cli._settings``), the API keywords (:func:`training_config`) and the table in ``docs/training.md``
(:func:`settings_markdown`) are generated from these definitions, so a new setting is one field here.

The defaults are the reference recipe (1000 epochs x 250 iterations, SGD Nesterov momentum 0.99, lr 1e-2, weight
decay 3e-5, poly schedule, Dice+CE with deep supervision, gradient clipping at 12, 50 validation iterations, 33 %
forced-foreground oversampling, EMA pseudo-Dice 0.9/0.1); :func:`training_config` with ``budget="short"`` is the
CPU-sized schedule of the same recipe.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import os
import re
import typing
from collections.abc import Callable
from dataclasses import field, fields
from typing import Annotated, Any, TypeVar

from pydantic import AfterValidator, ConfigDict, Field, ValidationError
from pydantic.dataclasses import dataclass

from autounet.errors import ConfigError, SchemaError
from autounet.schemas._base import header_schema, json_schema, read_json, save_record, unwrap, wrap

SCHEMA = "autounet/training_config"
SCHEMA_VERSION = 2
#: training budgets: ``full`` (the method's schedule) and ``short`` (CPU-sized); older spellings still accepted
BUDGETS = ("full", "short")
BUDGET_ALIASES = {"reference": "full", "default": "full"}
DEVICE_PATTERN = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def meta(*, help: str, flag: str | None = None, aliases: tuple[str, ...] = (),
         metavar: str | None = None) -> dict[str, Any]:
    """A setting's metadata: help text, CLI flag (``None``: no flag), deprecated flag aliases, metavar."""
    return {"help": help, "flag": flag, "aliases": aliases, "metavar": metavar}


def setting(default: Any, **metadata: Any) -> Any:
    """A dataclass field with a constant default and :func:`meta` metadata."""
    return field(default=default, metadata=meta(**metadata))


def check_device(name: str, *, where: str = "device") -> str:
    """``name`` if it is ``auto``, ``cpu``, ``mps``, ``cuda`` or ``cuda:N``; else ``ConfigError``."""
    if not isinstance(name, str) or not DEVICE_PATTERN.match(name):
        raise ConfigError(f"{where} must be auto, cpu, mps, cuda or cuda:N, got {name!r}.")
    return name


def _device(name: str) -> str:
    if not DEVICE_PATTERN.match(name):
        raise ValueError("must be auto, cpu, mps, cuda or cuda:N")
    return name


#: validation of the settings records: unknown keywords are errors, defaults are trusted
SETTINGS_CONFIG = ConfigDict(extra="forbid")
AtLeast1 = Annotated[int, Field(ge=1)]
AtLeast0 = Annotated[int, Field(ge=0)]
Positive = Annotated[float, Field(gt=0)]
Share = Annotated[float, Field(ge=0.0, le=1.0)]
Decay = Annotated[float, Field(ge=0.0, lt=1.0)]
Device = Annotated[str, AfterValidator(_device)]
C = TypeVar("C")
#: pydantic's bound errors as the settings' messages
_BOUNDS = {"greater_than_equal": ">=", "greater_than": ">", "less_than_equal": "<=", "less_than": "<"}
_BOUND_KEYS = {"greater_than_equal": "ge", "greater_than": "gt", "less_than_equal": "le", "less_than": "lt"}


def config_error(exc: ValidationError) -> ConfigError:
    """One ``ConfigError`` line for the first problem pydantic found: the setting's name, the rule, the value."""
    first = exc.errors(include_url=False)[0]
    name = ".".join(str(p) for p in first["loc"]) or "settings"
    kind, value = first["type"], first.get("input")
    if kind in _BOUNDS:
        return ConfigError(f"{name} must be {_BOUNDS[kind]} {first['ctx'][_BOUND_KEYS[kind]]}, got {value!r}.")
    if kind == "unexpected_keyword_argument":
        return ConfigError(f"Unknown training setting {name!r}.")
    text = str(first["msg"]).removeprefix("Value error, ")
    if kind == "value_error":
        return ConfigError(f"{name} {text}, got {value!r}.")
    return ConfigError(f"{name}: {text.rstrip('.')} (got {value!r}).")


def _config_errors(cls: C) -> C:
    """Let the constructor of a pydantic dataclass raise ``ConfigError`` (via :func:`config_error`)."""
    init: Callable[..., None] = cls.__init__  # type: ignore[misc]

    @functools.wraps(init)
    def __init__(self: Any, *args: Any, **kwargs: Any) -> None:
        try:
            init(self, *args, **kwargs)
        except ValidationError as exc:
            raise config_error(exc) from None

    cls.__init__ = __init__  # type: ignore[misc]
    return cls


@_config_errors
@dataclass(frozen=True, config=SETTINGS_CONFIG)
class TrainingRecipe:
    """What is trained (defaults: the reference recipe). Components are registered names plus parameters."""

    epochs: AtLeast1 = setting(1000, flag="--epochs", help="number of epochs")
    iterations_per_epoch: AtLeast1 = setting(250, flag="--iters-per-epoch", help="training batches per epoch")
    val_iterations: AtLeast0 = setting(50, flag="--val-iters", help="validation batches per epoch (pseudo-Dice)")
    batch_size: AtLeast1 | None = setting(None, flag="--batch-size", help="total batch size (default: the plans')")
    initial_lr: Positive = setting(1e-2, flag="--lr", help="learning rate of epoch 0")
    optimizer: str = setting("sgd", flag="--optimizer", metavar="NAME",
                             help="optimiser (registered: sgd = SGD Nesterov, adamw)")
    optimizer_params: dict[str, Any] = field(default_factory=dict, metadata=meta(
        flag="--optimizer-param", metavar="KEY=VALUE",
        help="optimiser parameter, repeatable (sgd: momentum 0.99, weight_decay 3e-5, nesterov true)"))
    schedule: str = setting("poly", flag="--schedule", metavar="NAME",
                            help="learning-rate schedule (registered: poly, constant)")
    schedule_params: dict[str, Any] = field(default_factory=dict, metadata=meta(
        flag="--schedule-param", metavar="KEY=VALUE", help="schedule parameter, repeatable (poly: exponent 0.9)"))
    loss: str = setting("dice_ce", flag="--loss", metavar="NAME",
                        help="loss (registered: dice_ce = Dice+CE, or Dice+BCE for regions)")
    loss_params: dict[str, Any] = field(default_factory=dict, metadata=meta(
        flag="--loss-param", metavar="KEY=VALUE",
        help="loss parameter, repeatable (dice_ce: weight_ce 1, weight_dice 1, smooth 1e-5)"))
    grad_clip: Positive = setting(12.0, flag="--grad-clip", help="global L2 gradient-norm clip")
    oversample_foreground: Share = setting(0.33, flag="--oversample",
                                           help="share of each batch forced to contain foreground")
    probabilistic_oversampling: bool = setting(False, flag="--probabilistic-oversampling",
                                               help="force each sample with that probability instead")
    deep_supervision: bool = setting(True, flag="--no-deep-supervision", help="train without deep supervision")
    ema_decay: Decay = setting(0.9, flag="--ema-decay", help="weight of the old value in the EMA pseudo-Dice")
    augmentation: str = setting("default", flag="--augmentation", metavar="PRESET|FILE",
                                help="augmentation preset name or JSON file")
    pretrained: str | None = setting(None, flag="--pretrained", metavar="CKPT",
                                     help="initialise from these weights (fresh start only)")
    trainer_name: str = setting("nnUNetTrainer", flag="--trainer", aliases=("--trainer-name",), metavar="NAME",
                                help="first part of the model folder name")


@_config_errors
@dataclass(frozen=True, config=SETTINGS_CONFIG)
class RuntimeSettings:
    """How a run executes on this machine; a resumed run takes these from the new invocation."""

    device: Device = setting("auto", flag="--device", metavar="DEVICE", help="auto, cpu, cuda, cuda:N or mps")
    loader_threads: AtLeast0 = setting(2, flag="--loader-threads", metavar="N",
                                  help="patch-reading threads (0: read in the main thread)")
    prefetch: AtLeast1 = setting(4, flag="--prefetch", metavar="N", help="batches read ahead of the training step")
    threads: AtLeast1 | None = setting(None, flag="--threads", help="torch CPU threads (default: torch's)")
    compile: bool = setting(True, flag="--no-compile", help="do not torch.compile the network (only used on CUDA)")
    amp: bool = setting(True, flag="--no-amp",
                        help="no mixed precision (fp16 on CUDA, bf16 on CPUs with native bf16; else always off)")
    channels_last: bool = setting(False, flag="--channels-last", help="channels-last memory format")
    seed: int | None = setting(None, flag="--seed", help="base seed (default: random, stored for resume)")
    deterministic: bool = setting(False, flag="--deterministic",
                                  help="deterministic algorithms (bit-identical reruns on CPU)")
    checkpoint_every: AtLeast0 = setting(1, flag="--checkpoint-every", metavar="N",
                                    help="write checkpoint_latest every N epochs (0: only on interruption)")
    progress: bool = setting(False, help="show progress bars (the global --no-progress turns them off)")


RECIPE_FIELDS = tuple(f.name for f in fields(TrainingRecipe))
RUNTIME_FIELDS = tuple(f.name for f in fields(RuntimeSettings))
#: earlier names of settings (schema version 1, API keywords) -> current names
RENAMED = {"workers": "loader_threads"}


@_config_errors
@dataclass(frozen=True, config=SETTINGS_CONFIG)
class TrainingConfig:
    """A run's recipe and runtime settings (the content of ``training_config.json``)."""

    recipe: TrainingRecipe = field(default_factory=TrainingRecipe)
    runtime: RuntimeSettings = field(default_factory=RuntimeSettings)

    def replace(self, **changes: Any) -> TrainingConfig:
        """A copy with some recipe or runtime fields changed (unknown names raise ``ConfigError``)."""
        recipe, runtime = split_settings(changes)
        return TrainingConfig(dataclasses.replace(self.recipe, **recipe), dataclasses.replace(self.runtime, **runtime))

    def to_dict(self) -> dict[str, Any]:
        """The on-disk record (schema header, ``recipe`` and ``runtime``)."""
        return wrap(SCHEMA, SCHEMA_VERSION, {"recipe": dataclasses.asdict(self.recipe),
                                             "runtime": dataclasses.asdict(self.runtime)})

    @classmethod
    def from_dict(cls, data: Any, *, where: str = "training config") -> TrainingConfig:
        """Validate a record written by :meth:`to_dict` (or the flat version 1 record)."""
        data = unwrap(data, schema=SCHEMA, version=SCHEMA_VERSION, where=where, migrations={1: _migrate_v1})
        unknown = sorted(set(data) - {"schema", "schema_version", "provenance", "recipe", "runtime"})
        if unknown:
            raise SchemaError(f"{where}: unknown key(s) {', '.join(unknown)}.")
        try:
            return cls(_build(TrainingRecipe, data.get("recipe", {}), where=f"{where} (recipe)"),
                       _build(RuntimeSettings, data.get("runtime", {}), where=f"{where} (runtime)"))
        except ConfigError as exc:
            raise SchemaError(f"{where}: {exc}") from exc


def _build(cls: Any, values: Any, *, where: str) -> Any:
    if not isinstance(values, dict):
        raise SchemaError(f"{where}: expected a JSON object.")
    known = {f.name for f in fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise SchemaError(f"{where}: unknown key(s) {', '.join(unknown)}. Known: {', '.join(sorted(known))}.")
    return cls(**values)


def _migrate_v1(data: dict[str, Any]) -> dict[str, Any]:
    """Version 1 was one flat record; momentum / weight decay / poly exponent became component parameters."""
    flat = {RENAMED.get(k, k): v for k, v in data.items() if k not in ("schema", "schema_version", "provenance")}
    optimizer_params = {k: flat.pop(k) for k in ("momentum", "weight_decay") if k in flat}
    schedule_params = {"exponent": flat.pop("poly_exponent")} if "poly_exponent" in flat else {}
    recipe = {k: v for k, v in flat.items() if k not in RUNTIME_FIELDS}
    recipe.update(optimizer_params=optimizer_params, schedule_params=schedule_params)
    return {"schema": data["schema"], "schema_version": 1,
            "recipe": recipe, "runtime": {k: v for k, v in flat.items() if k in RUNTIME_FIELDS}}


# ---- one place that turns a budget and keyword settings into a config ---------------------------------------------
def canonical_budget(name: str) -> str:
    """``full`` or ``short`` (``reference`` and ``default`` mean ``full``); else ``ConfigError``."""
    name = BUDGET_ALIASES.get(name, name)
    if name not in BUDGETS:
        raise ConfigError(f"Unknown training budget {name!r}. Available: {', '.join(BUDGETS)}.")
    return name


def split_settings(settings: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(recipe fields, runtime fields)`` of keyword settings; unknown names raise ``ConfigError``."""
    recipe: dict[str, Any] = {}
    runtime: dict[str, Any] = {}
    for key, value in settings.items():
        name = RENAMED.get(key, key)
        if name in RECIPE_FIELDS:
            recipe[name] = value
        elif name in RUNTIME_FIELDS:
            runtime[name] = value
        else:
            close = difflib.get_close_matches(key, [*RECIPE_FIELDS, *RUNTIME_FIELDS], n=3)
            hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
            raise ConfigError(f"Unknown training setting {key!r}.{hint}")
    return recipe, runtime


def budget_defaults(budget: str, *, spatial_dims: int = 2) -> dict[str, Any]:
    """The settings a budget changes from the reference recipe.

    ``short`` keeps the recipe and sizes its schedule for 2 CPU cores (contiguous memory format, the fastest with
    bf16 mixed precision on a CPU):

    * 2D: 16 epochs x 50 iterations of batch 8, 10 validation iterations (Hippocampus ``2d`` fold 0: 7 min,
      validation Dice 0.80 -- ``benchmarks/results/training.md``);
    * 3D: 8 epochs x 12 iterations of batch 2, 2 validation iterations (a smoke-level schedule for 3D).
    """
    if canonical_budget(budget) == "full":
        return {}
    if spatial_dims not in (2, 3):
        raise ConfigError(f"spatial_dims must be 2 or 3, got {spatial_dims!r}.")
    sizes = ({"epochs": 16, "iterations_per_epoch": 50, "val_iterations": 10, "batch_size": 8}
             if spatial_dims == 2 else {"epochs": 8, "iterations_per_epoch": 12, "val_iterations": 2, "batch_size": 2})
    return sizes


def training_config(budget: str = "full", *, spatial_dims: int = 2, **settings: Any) -> TrainingConfig:
    """The config of ``budget`` for a 2D or 3D configuration, with any recipe or runtime field overridden."""
    recipe, runtime = split_settings({**budget_defaults(budget, spatial_dims=spatial_dims), **settings})
    return TrainingConfig(TrainingRecipe(**recipe), RuntimeSettings(**runtime))


# ---- generated documentation --------------------------------------------------------------------------------------
def setting_fields() -> list[tuple[str, dataclasses.Field[Any]]]:
    """``(group, field)`` for every recipe and runtime field, in definition order."""
    return [*(("recipe", f) for f in fields(TrainingRecipe)), *(("runtime", f) for f in fields(RuntimeSettings))]


def field_type(group: str, f: dataclasses.Field[Any]) -> Any:
    """The resolved annotation of a recipe or runtime field."""
    cls = TrainingRecipe if group == "recipe" else RuntimeSettings
    return typing.get_type_hints(cls)[f.name]


def settings_markdown() -> str:
    """The Markdown table of every training setting (``docs/training.md`` includes it verbatim)."""
    rows = ["| setting (API keyword) | CLI flag | default | group | meaning |", "|---|---|---|---|---|"]
    for group, f in setting_fields():
        default = f.default_factory() if f.default is dataclasses.MISSING else f.default  # type: ignore[operator]
        flag = f.metadata["flag"] or "(global `--no-progress`)"
        rows.append(f"| `{f.name}` | `{flag}` | `{default!r}` | {group} | {f.metadata['help']} |")
    return "\n".join(rows) + "\n"


def load_training_config(path: str | os.PathLike[str]) -> TrainingConfig:
    """Read a ``training_config.json``."""
    return TrainingConfig.from_dict(read_json(path, what="Training config"), where=f"training config {os.fspath(path)}")


def training_config_json_schema() -> dict[str, Any]:
    """The JSON Schema of ``training_config.json`` (each setting described by its help text)."""
    body = json_schema(TrainingConfig)
    for group, f in setting_fields():
        cls = TrainingRecipe if group == "recipe" else RuntimeSettings
        body["$defs"][cls.__name__]["properties"][f.name]["description"] = f.metadata["help"]
    return header_schema(body, schema=SCHEMA, version=SCHEMA_VERSION)


def save_training_config(path: str | os.PathLike[str], config: TrainingConfig) -> None:
    """Write a ``training_config.json`` atomically."""
    save_record(path, config.to_dict())
