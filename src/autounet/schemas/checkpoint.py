"""The typed checkpoint record: what ``checkpoint_{latest,best,final}.pth`` holds, for autounet and nnU-Net 2.8.1.

A checkpoint is a ``torch.save`` dict, not JSON; this module types its content (:class:`CheckpointRecord`) so that
every reader and writer goes through one validation: the state dicts are checked to be tensor mappings, the
counters to be numbers, the settings to be the records they claim to be. The file itself is read and written by
``autounet.training.checkpoint`` (weights-only loading, atomic writes), which calls :func:`checkpoint_record` and
:meth:`CheckpointRecord.payload`.

Two on-disk forms are accepted:

* autounet's (``schema`` ``autounet/checkpoint``, ``schema_version`` 1): the reference's keys plus the resume state
  (``iteration``, ``epoch_train_losses``, ``epoch_start``, ``epoch_wait``, ``seed``, ``rng_state``) and the
  ``training_config`` record. Unknown keys are errors.
* the reference's (no header): ``network_weights``, ``optimizer_state``, ``grad_scaler_state``, ``logging`` (its
  flat log dict), ``_best_ema``, ``current_epoch``, ``init_args``, ``trainer_name``,
  ``inference_allowed_mirroring_axes``. Keys only a trainer variant adds are ignored (it is a foreign format),
  numpy scalars become Python numbers and ``init_args.device`` its text.
* a bare state dict (every value a tensor, as ``torch.save(model.state_dict())`` writes): the ``network_weights``.

Tensors are not imported here (``schemas`` stays torch-free): a tensor is checked by its type's module and name.
"""

from __future__ import annotations

import numbers
from collections.abc import Mapping
from typing import Annotated, Any

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    field_validator,
)

from autounet.errors import SchemaError
from autounet.schemas._base import Migration, header_schema, json_schema, unwrap
from autounet.schemas.training import TrainingConfig

SCHEMA = "autounet/checkpoint"
SCHEMA_VERSION = 1
#: the keys of a reference (nnU-Net 2.8.1) checkpoint
REFERENCE_KEYS = ("network_weights", "optimizer_state", "grad_scaler_state", "logging", "_best_ema", "current_epoch",
                  "init_args", "trainer_name", "inference_allowed_mirroring_axes")

_CONFIG = ConfigDict(frozen=True, extra="forbid", validate_by_name=True, validate_by_alias=True,
                     arbitrary_types_allowed=True)


def _is_tensor(value: Any) -> bool:
    cls = type(value)
    return any(c.__module__.startswith("torch") and c.__name__ == "Tensor" for c in cls.__mro__)


def _tensor(value: Any) -> Any:
    if not _is_tensor(value):
        raise ValueError(f"expected a tensor, got {type(value).__name__}")
    return value


def _number(value: Any) -> Any:
    """numpy (or 0-d tensor) scalars as Python numbers; everything else unchanged for pydantic to judge."""
    if not isinstance(value, (bool, int, float, str)) and hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
        return value.item()
    return value


#: a torch tensor (any dtype, shape, device)
Tensor = Annotated[Any, BeforeValidator(_tensor), WithJsonSchema({"description": "a torch tensor"})]
TensorMap = Annotated[dict[str, Tensor], WithJsonSchema(
    {"type": "object", "additionalProperties": {"description": "a torch tensor"},
     "description": "a state dict: parameter name -> tensor"})]
Int = Annotated[int, BeforeValidator(_number)]
Float = Annotated[float, BeforeValidator(_number)]


def _check_config(value: Any) -> Any:
    if value is None or isinstance(value, TrainingConfig):
        return value
    try:
        return TrainingConfig.from_dict(value, where="training_config")
    except SchemaError as exc:
        raise ValueError(str(exc).removeprefix("training_config: ")) from None


Config = Annotated[Any, BeforeValidator(_check_config), WithJsonSchema(
    {"type": "object", "description": "the training_config.json record of the run"})]


class OptimizerState(BaseModel):
    """A ``torch.optim.Optimizer.state_dict()``: per-parameter state (tensors and step counts) and the groups."""

    model_config = _CONFIG

    state: dict[Int, dict[str, Any]] = Field(description="parameter index -> its state (momentum buffers, steps)")
    param_groups: list[dict[str, Any]] = Field(description="hyper-parameters and parameter indices per group")

    @field_validator("state")
    @classmethod
    def _tensors_or_numbers(cls, value: dict[int, dict[str, Any]]) -> dict[int, dict[str, Any]]:
        for index, entry in value.items():
            for key, item in entry.items():
                if not (_is_tensor(item) or isinstance(item, numbers.Number) or item is None):
                    raise ValueError(f"state of parameter {index}: {key} is a {type(item).__name__}, not a tensor "
                                     "or number")
        return value

    def as_dict(self) -> dict[str, Any]:
        """The form ``Optimizer.load_state_dict`` takes."""
        return {"state": dict(self.state), "param_groups": [dict(g) for g in self.param_groups]}


class LogState(BaseModel):
    """The per-epoch log: ``values`` holds one list per key (the reference's log dict); ``ema_decay`` its EMA weight.

    The reference stores the lists as a flat dict; it is read into ``values`` (``ema_decay`` then 0.9, its value).
    """

    model_config = _CONFIG

    ema_decay: Float = Field(default=0.9, ge=0.0, lt=1.0, description="weight of the old EMA pseudo-Dice value")
    values: dict[str, list[Any]] = Field(default_factory=dict, description="log key -> one entry per epoch")

    @classmethod
    def read(cls, value: Any) -> Any:
        """The reference's flat log dict as ``{"values": ...}``; anything else unchanged."""
        if isinstance(value, Mapping) and not (set(value) <= {"ema_decay", "values"}):
            return {"values": dict(value)}
        return value

    def as_dict(self) -> dict[str, Any]:
        """The form ``TrainingLog.from_state_dict`` takes."""
        return {"ema_decay": self.ema_decay, "values": {k: list(v) for k, v in self.values.items()}}


class InitArgs(BaseModel):
    """The trainer's constructor arguments (reference: plans, configuration, fold, dataset_json, device).

    Extra keys are kept: reference trainer variants add their own constructor arguments.
    """

    model_config = ConfigDict(frozen=True, extra="allow", coerce_numbers_to_str=False)

    plans: dict[str, Any] | None = Field(default=None, description="the plans the run used (reference layout)")
    configuration: str | None = Field(default=None, description="configuration name, e.g. 3d_fullres")
    fold: Int | str | None = Field(default=None, description="fold index or 'all'")
    dataset_json: dict[str, Any] | None = Field(default=None, description="the dataset.json of the run")
    device: Annotated[str | None, BeforeValidator(lambda v: v if v is None or isinstance(v, str) else str(v))] = \
        Field(default=None, description="device the run trained on")

    def as_dict(self) -> dict[str, Any]:
        """The stored form (fields that are set, then the extra keys)."""
        out = {k: getattr(self, k) for k in type(self).model_fields if getattr(self, k) is not None}
        out.update(self.model_extra or {})
        return out


class RngState(BaseModel):
    """Global generator states: torch (CPU), numpy (``np.random.get_state()``), Python, and CUDA when used."""

    model_config = _CONFIG

    torch: Tensor | None = Field(default=None, description="torch.get_rng_state()")
    numpy: tuple[Any, ...] | None = Field(default=None, description="np.random.get_state()")
    python: tuple[Any, ...] | None = Field(default=None, description="random.getstate()")
    cuda: list[Tensor] | None = Field(default=None, description="torch.cuda.get_rng_state_all()")

    def as_dict(self) -> dict[str, Any]:
        """The states that are set, by generator name."""
        return {k: getattr(self, k) for k in ("torch", "numpy", "python", "cuda") if getattr(self, k) is not None}


class CheckpointRecord(BaseModel):
    """Everything a run needs to continue bit-identically or to predict (the non-tensor part typed).

    Attributes:
        network_weights: the network's state dict (reference names where the network has them).
        optimizer_state: the optimiser's state dict; ``None`` in inference-only checkpoints.
        grad_scaler_state: the AMP grad scaler's state dict (``None`` without AMP).
        logging: the per-epoch log.
        best_ema: best EMA pseudo-Dice so far (``_best_ema`` on disk).
        current_epoch: the next epoch to run (``epochs`` in a final checkpoint).
        init_args: plans, configuration, fold, dataset.json and device of the run.
        trainer_name: the trainer (first part of the model folder name).
        inference_allowed_mirroring_axes: test-time mirroring axes; ``None``: no mirroring.
        iteration: next iteration of ``current_epoch`` (non-zero after an interruption inside an epoch).
        epoch_train_losses: the interrupted epoch's losses so far.
        epoch_start: when the interrupted epoch started (``time.time()``).
        epoch_wait: data-wait seconds of the interrupted epoch so far.
        seed: the run's base seed.
        rng_state: the global generator states.
        training_config: the run's recipe and runtime settings.
    """

    model_config = _CONFIG

    network_weights: TensorMap = Field(description="the network's state dict")
    optimizer_state: OptimizerState | None = None
    grad_scaler_state: dict[str, Any] | None = Field(default=None, description="torch.amp.GradScaler.state_dict()")
    logging: Annotated[LogState | None, BeforeValidator(LogState.read)] = None
    best_ema: Float | None = Field(default=None, alias="_best_ema", description="best EMA pseudo-Dice so far")
    current_epoch: Int | None = Field(default=None, ge=0, description="the next epoch to run")
    init_args: InitArgs | None = None
    trainer_name: str | None = Field(default=None, description="trainer name")
    inference_allowed_mirroring_axes: tuple[Int, ...] | None = Field(
        default=None, description="test-time mirroring axes (null: no mirroring)")
    iteration: Int = Field(default=0, ge=0, description="next iteration of current_epoch")
    epoch_train_losses: list[Float] = Field(default_factory=list, description="losses of the interrupted epoch")
    epoch_start: Float | None = Field(default=None, description="start time of the interrupted epoch")
    epoch_wait: Float = Field(default=0.0, ge=0.0, description="data-wait seconds of the interrupted epoch")
    seed: Int | None = Field(default=None, description="base seed of the run")
    rng_state: RngState | None = None
    training_config: Config = None

    @property
    def configuration(self) -> str | None:
        """The configuration name stored in ``init_args`` (``None`` when absent)."""
        return self.init_args.configuration if self.init_args is not None else None

    def payload(self, *, reference: bool = False) -> dict[str, Any]:
        """The dict ``torch.save`` writes: autounet's form (header, every key), or (``reference``) the reference's
        keys only, those that are set, as nnU-Net's predictor reads them."""
        out: dict[str, Any] = {} if reference else {"schema": SCHEMA, "schema_version": SCHEMA_VERSION}
        out.update({
            "network_weights": dict(self.network_weights),
            "optimizer_state": self.optimizer_state.as_dict() if self.optimizer_state is not None else None,
            "grad_scaler_state": self.grad_scaler_state,
            "logging": self.logging.as_dict() if self.logging is not None else None,
            "_best_ema": self.best_ema,
            "current_epoch": self.current_epoch,
            "init_args": self.init_args.as_dict() if self.init_args is not None else None,
            "trainer_name": self.trainer_name,
            "inference_allowed_mirroring_axes": self.inference_allowed_mirroring_axes,
        })
        if reference:
            return {k: v for k, v in out.items() if v is not None or k == "inference_allowed_mirroring_axes"}
        out.update(iteration=self.iteration, epoch_train_losses=list(self.epoch_train_losses),
                   epoch_start=self.epoch_start, epoch_wait=self.epoch_wait, seed=self.seed,
                   rng_state=self.rng_state.as_dict() if self.rng_state is not None else None,
                   training_config=self.training_config.to_dict() if self.training_config is not None else None)
        return out


def checkpoint_record(content: Any, *, where: str) -> CheckpointRecord:
    """Validate a loaded checkpoint dict (autounet's, with header, or the reference's) into a record.

    Raises ``SchemaError`` with one line naming ``where`` and the first bad field.
    """
    if not isinstance(content, Mapping):
        raise SchemaError(f"{where} holds a {type(content).__name__}, not a dict of weights and settings.")
    data = dict(content)
    if "schema" in data or "schema_version" in data:
        data = unwrap(data, schema=SCHEMA, version=SCHEMA_VERSION, where=where, migrations=MIGRATIONS)
        data.pop("schema", None)
        data.pop("schema_version", None)
    elif data and "network_weights" not in data and all(_is_tensor(v) for v in data.values()):
        data = {"network_weights": data}  # a bare state dict (``torch.save(model.state_dict())``), e.g. pretrained
    else:  # the reference's format: keep its keys (and ours, for headerless files of early autounet versions)
        known = set(REFERENCE_KEYS) | set(CheckpointRecord.model_fields)
        data = {k: v for k, v in data.items() if k in known}
    if "network_weights" not in data:
        raise SchemaError(f"{where}: missing key network_weights (the network's weights).")
    try:
        return CheckpointRecord.model_validate(data)
    except ValidationError as exc:
        raise SchemaError(f"{where}: {_describe(exc)}") from None


#: ``MIGRATIONS[v]`` upgrades a version-``v`` checkpoint dict to ``v + 1`` (none yet: version 1 is current)
MIGRATIONS: dict[int, Migration] = {}


def _describe(exc: ValidationError) -> str:
    """The first problem: the field's dotted path and what is wrong (values shown briefly, never whole tensors)."""
    errors = exc.errors(include_url=False)
    unknown = [_loc(e["loc"]) for e in errors if e["type"] == "extra_forbidden"]
    if unknown:
        return f"unknown key(s) {', '.join(unknown)}."
    first = errors[0]
    text = str(first["msg"]).removeprefix("Value error, ").rstrip(".")
    value = first.get("input")
    shown = "" if first["type"] in ("value_error", "missing") or _is_tensor(value) or isinstance(value, (dict, list)) \
        else f" (got {_short(value)})"
    return f"field {_loc(first['loc']) or '(top level)'}: {text}{shown}."


#: union-member and validator tags pydantic puts into an error's location (not keys of the checkpoint)
_TAGS = ("int", "float", "str", "none", "tuple[int, ...]", "list[float]")


def _loc(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc if str(p) not in _TAGS and not str(p).startswith(("function-", "lax-")))


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def checkpoint_json_schema() -> dict[str, Any]:
    """The JSON Schema of the checkpoint dict (its structure; the file itself is a ``torch.save`` pickle)."""
    body = json_schema(CheckpointRecord)
    body["description"] = ("autounet checkpoint (checkpoint_*.pth, a torch.save dict read weights-only); tensors "
                           "are torch tensors, not JSON")
    out = header_schema(body, schema=SCHEMA, version=SCHEMA_VERSION)
    del out["properties"]["provenance"]  # a checkpoint carries no provenance block
    return out
