"""Model packages: one zip per dataset in the reference's (nnU-Net v2) layout, plus a model card.

A package holds ``<Dataset>/<Trainer>__<Plans>__<Config>/`` folders with ``plans.json``, ``dataset.json``,
``dataset_fingerprint.json``, ``fold_<k>/checkpoint_*.pth`` (inference content only: weights under the
reference's names, ``init_args``, ``trainer_name``, mirroring axes), ``fold_<k>/progress.png`` and
``fold_<k>/validation/summary.json``, and the cross-validation summary and postprocessing of each model, plus the
dataset's ``inference_information.json`` / ``inference_instructions.txt`` when present: what
``nnUNetv2_export_model_to_zip`` writes, so that ``nnUNetv2_install_pretrained_model_from_zip`` installs it too.
``<Dataset>/model.json`` is the model card (:class:`ModelCard`): labels, channels, spacing, training-case count,
cross-validation Dice and NSD, the autounet version and the SHA-256 of every other file.

Zips are untrusted: extraction refuses absolute paths, ``..``, backslashes, links, encrypted or duplicate
members, more than one dataset, too many members and too many (actual, not declared) bytes; installed packages
with a model card must match its hashes file by file, with no unlisted file. Zips made by the reference (no
card) install after the same checks. Checkpoints are only ever loaded weights-only.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import stat
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import torch

from autounet._atomic import atomic_path
from autounet._log import get_logger
from autounet.errors import CheckpointError, PlansError, SchemaError, UsageError
from autounet.inference.model import checkpoint_file_name, detect_folds
from autounet.planning.reference import export_plans
from autounet.planning.store import read_plans_file
from autounet.schemas._base import (
    PACKAGE_VERSION,
    make_provenance,
    read_json,
    unwrap,
    wrap,
)
from autounet.schemas.checkpoint import InitArgs
from autounet.training.checkpoint import CheckpointRecord, load_checkpoint
from autounet.workspace import (
    DATASET_DIR_PATTERN,
    DATASET_JSON,
    FINGERPRINT_JSON,
    INFERENCE_INFORMATION_JSON,
    INFERENCE_INSTRUCTIONS_TXT,
    PLANS_JSON,
    POSTPROCESSING_JSON,
    SUMMARY_JSON,
    VALIDATION_DIR,
    crossval_dir_name,
    fold_dir_name,
)

log = get_logger(__name__)

MODEL_CARD = "model.json"
CARD_SCHEMA = "autounet/model-card"
CARD_VERSION = 1
#: checkpoint entries a packaged checkpoint keeps (all the reference's predictor reads)
INFERENCE_KEYS = ("network_weights", "init_args", "trainer_name", "inference_allowed_mirroring_axes",
                  "current_epoch")  # the fields _inference_checkpoint sets
DEFAULT_MAX_BYTES = 16 * 2**30
DEFAULT_MAX_MEMBERS = 10_000
_CHUNK = 2**20


# ---- the model card --------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class PackagedModel:
    """One trained configuration in a package."""

    folder: str
    trainer: str
    plans_name: str
    configuration: str
    folds: tuple[str, ...]
    checkpoints: tuple[str, ...]
    spacing: tuple[float, ...]
    patch_size: tuple[int, ...]
    cross_validation: dict[str, float] = field(default_factory=dict)
    cross_validation_source: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return {"folder": self.folder, "trainer": self.trainer, "plans_name": self.plans_name,
                "configuration": self.configuration, "folds": list(self.folds),
                "checkpoints": list(self.checkpoints), "spacing": list(self.spacing),
                "patch_size": list(self.patch_size), "cross_validation": dict(self.cross_validation),
                "cross_validation_source": self.cross_validation_source}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PackagedModel:
        return cls(folder=str(d["folder"]), trainer=str(d["trainer"]), plans_name=str(d["plans_name"]),
                   configuration=str(d["configuration"]), folds=tuple(str(f) for f in d["folds"]),
                   checkpoints=tuple(str(c) for c in d["checkpoints"]),
                   spacing=tuple(float(s) for s in d["spacing"]), patch_size=tuple(int(p) for p in d["patch_size"]),
                   cross_validation={str(k): float(v) for k, v in (d.get("cross_validation") or {}).items()},
                   cross_validation_source=d.get("cross_validation_source"))


@dataclass(frozen=True)
class ModelCard:
    """``model.json``: what a package holds and the SHA-256 of every other file in it (paths in the zip)."""

    dataset_name: str
    labels: dict[str, Any]
    channels: dict[str, str]
    file_ending: str
    training_cases: int
    models: tuple[PackagedModel, ...]
    files: dict[str, str]
    autounet_version: str = PACKAGE_VERSION

    def to_dict(self) -> dict[str, Any]:
        body = {"dataset_name": self.dataset_name, "autounet_version": self.autounet_version,
                "labels": dict(self.labels), "channels": dict(self.channels), "file_ending": self.file_ending,
                "training_cases": self.training_cases, "models": [m.to_dict() for m in self.models],
                "files": dict(sorted(self.files.items()))}
        return wrap(CARD_SCHEMA, CARD_VERSION, body, provenance=make_provenance("autounet.inference.package"))

    @classmethod
    def from_dict(cls, data: Any, *, where: str) -> ModelCard:
        d = unwrap(data, schema=CARD_SCHEMA, version=CARD_VERSION, where=where)
        try:
            return cls(dataset_name=str(d["dataset_name"]), labels=dict(d["labels"]), channels=dict(d["channels"]),
                       file_ending=str(d["file_ending"]), training_cases=int(d["training_cases"]),
                       models=tuple(PackagedModel.from_dict(m) for m in d["models"]),
                       files={str(k): str(v) for k, v in d["files"].items()},
                       autounet_version=str(d["autounet_version"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise SchemaError(f"{where}: invalid model card ({type(exc).__name__}: {exc}).") from exc


# ---- export ----------------------------------------------------------------------------------------------------
def export_package(dataset_results: str | os.PathLike[str], output: str | os.PathLike[str], *,
                   configurations: Sequence[str] | None = None, trainer: str = "nnUNetTrainer",
                   plans_name: str = "nnUNetPlans", folds: Sequence[int | str] | None = None,
                   checkpoints: Sequence[str] = ("final",)) -> ModelCard:
    """Write the trained models of ``dataset_results`` (``results/<Dataset>``) into the zip ``output``.

    ``configurations`` ``None`` packs every configuration trained with ``trainer`` and ``plans_name``; ``folds``
    ``None`` every fold holding the (first) checkpoint. Plans and weights are written in the reference's form
    whatever form the folder holds. Raises ``UsageError`` when nothing (or a requested part) is missing.
    """
    root = Path(dataset_results)
    dataset_name = root.name
    if not root.is_dir() or not DATASET_DIR_PATTERN.match(dataset_name):
        raise UsageError(f"No trained dataset folder {root} (expected results/DatasetXXX_Name).")
    names = [checkpoint_file_name(c) for c in checkpoints]
    model_dirs = _model_dirs(root, configurations, trainer=trainer, plans_name=plans_name)
    entries: dict[str, bytes | Path] = {}
    models = []
    for config, model_dir in model_dirs:
        models.append(_pack_model(root, model_dir, config, folds, names, entries))
    for name in (INFERENCE_INFORMATION_JSON, INFERENCE_INSTRUCTIONS_TXT):
        if (root / name).is_file():
            entries[f"{dataset_name}/{name}"] = root / name
    spec = read_json(model_dirs[0][1] / DATASET_JSON, what="dataset.json")
    card = ModelCard(dataset_name=dataset_name, labels=dict(spec.get("labels", {})),
                     channels={str(k): str(v) for k, v in (spec.get("channel_names") or spec.get("modality")
                                                           or {}).items()},
                     file_ending=str(spec.get("file_ending", "")), training_cases=int(spec.get("numTraining", 0)),
                     models=tuple(models), files={})
    files = {}
    with atomic_path(output, suffix=".zip") as tmp, zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as zf:
        for arcname, source in entries.items():
            data = source if isinstance(source, bytes) else source.read_bytes()
            zf.writestr(arcname, data)
            files[arcname] = hashlib.sha256(data).hexdigest()
        card = ModelCard(**{**card.__dict__, "files": files})
        zf.writestr(f"{dataset_name}/{MODEL_CARD}", _json_bytes(card.to_dict()))
    return card


def _model_dirs(root: Path, configurations: Sequence[str] | None, *, trainer: str,
                plans_name: str) -> list[tuple[str, Path]]:
    prefix = f"{trainer}__{plans_name}__"
    found = {d.name[len(prefix):]: d for d in sorted(root.iterdir())
             if d.is_dir() and d.name.startswith(prefix) and (d / PLANS_JSON).is_file()}
    if configurations is None:
        if not found:
            raise UsageError(f"No trained {trainer}__{plans_name} model in {root}.")
        return list(found.items())
    missing = [c for c in configurations if c not in found]
    if missing:
        have = ", ".join(found) or "none"
        raise UsageError(f"{root} has no trained {prefix}{missing[0]} (trained configurations: {have}).")
    return [(c, found[c]) for c in configurations]


def _pack_model(root: Path, model_dir: Path, config: str, folds: Sequence[int | str] | None,
                checkpoints: list[str], entries: dict[str, bytes | Path]) -> PackagedModel:
    plans = read_plans_file(model_dir / PLANS_JSON)
    plan = plans.configuration(config)
    fold_list = [str(f) for f in folds] if folds is not None else detect_folds(model_dir, checkpoints[0])
    if not fold_list:
        raise UsageError(f"No fold of {model_dir} holds {checkpoints[0]}.")
    base = f"{root.name}/{model_dir.name}"
    try:
        entries[f"{base}/{PLANS_JSON}"] = _json_bytes(export_plans(plans))
    except PlansError as exc:
        log.warning("%s: plans stay in autounet's schema (nnU-Net cannot load them): %s", model_dir.name, exc)
        entries[f"{base}/{PLANS_JSON}"] = model_dir / PLANS_JSON
    for name in (DATASET_JSON, FINGERPRINT_JSON):
        if (model_dir / name).is_file():
            entries[f"{base}/{name}"] = model_dir / name
    for fold in fold_list:
        fold_dir = model_dir / fold_dir_name(fold)
        for name in checkpoints:
            path = fold_dir / name
            if not path.is_file():
                raise UsageError(f"Fold {fold} of {model_dir.name} has no {name} ({path}).")
            entries[f"{base}/{fold_dir_name(fold)}/{name}"] = _inference_checkpoint(path, plan.network)
        for extra in ("progress.png", f"{VALIDATION_DIR}/{SUMMARY_JSON}"):
            if (fold_dir / extra).is_file():
                entries[f"{base}/{fold_dir_name(fold)}/{extra}"] = fold_dir / extra
    cv, source = {}, None
    crossval = model_dir / crossval_dir_name(sorted(int(f) for f in fold_list if f.isdigit()))
    for name in (SUMMARY_JSON, POSTPROCESSING_JSON):
        if (crossval / name).is_file():
            entries[f"{base}/{crossval.name}/{name}"] = crossval / name
    if (crossval / SUMMARY_JSON).is_file():
        cv, source = _foreground_means(crossval / SUMMARY_JSON), f"{crossval.name}/{SUMMARY_JSON}"
    else:
        per_fold = [_foreground_means(model_dir / fold_dir_name(f) / VALIDATION_DIR / SUMMARY_JSON)
                    for f in fold_list if (model_dir / fold_dir_name(f) / VALIDATION_DIR / SUMMARY_JSON).is_file()]
        if per_fold:
            keys = set.intersection(*(set(p) for p in per_fold))
            cv = {k: sum(p[k] for p in per_fold) / len(per_fold) for k in sorted(keys)}
            source = f"mean of {len(per_fold)} fold validation summaries"
    return PackagedModel(folder=model_dir.name, trainer=model_dir.name.split("__")[0], plans_name=plans.plans_name,
                         configuration=config, folds=tuple(fold_list), checkpoints=tuple(checkpoints),
                         spacing=tuple(plan.spacing), patch_size=tuple(plan.patch_size), cross_validation=cv,
                         cross_validation_source=source)


def _inference_checkpoint(path: Path, network: Any) -> bytes:
    """The entries the reference's predictor reads, weights under its names; serialised weights-only-safe."""
    from autounet.networks.reference_compat import (
        convert_reference_state_dict,
        to_reference_state_dict,
    )

    content = load_checkpoint(path)
    ours = convert_reference_state_dict(content.network_weights)
    try:
        weights = to_reference_state_dict(ours, network)
    except CheckpointError as exc:
        log.warning("%s: weights keep autounet names (nnU-Net cannot load them): %s", path, exc)
        weights = ours
    init = content.init_args or InitArgs()
    configuration = init.configuration or path.parent.parent.name.split("__")[-1]
    slim = CheckpointRecord(
        network_weights={k: v.detach().cpu() for k, v in weights.items()},
        init_args=InitArgs(configuration=configuration, fold=init.fold),
        trainer_name=content.trainer_name or path.parent.parent.name.split("__")[0],
        inference_allowed_mirroring_axes=content.inference_allowed_mirroring_axes,
        current_epoch=content.current_epoch).payload(reference=True)
    buf = io.BytesIO()
    torch.save(slim, buf)
    return buf.getvalue()


def _foreground_means(path: Path) -> dict[str, float]:
    data = read_json(path, what="validation summary")
    means = data.get("foreground_mean") if isinstance(data, dict) else None
    return {k: float(v) for k, v in (means or {}).items() if k in ("Dice", "NSD", "IoU", "HD95")}


def _json_bytes(obj: Any) -> bytes:
    import json

    return (json.dumps(obj, indent=2) + "\n").encode("utf-8")


# ---- safe extraction -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ExtractedPackage:
    """An extracted, checked package: its dataset folder, model folders and card (``None``: a reference zip)."""

    root: Path
    dataset_name: str
    model_dirs: tuple[Path, ...]
    card: ModelCard | None

    @property
    def dataset_dir(self) -> Path:
        return self.root / self.dataset_name

    def select(self, *, configuration: str | None = None, trainer: str | None = None,
               plans_name: str | None = None) -> Path:
        """The one model folder matching the given parts (``UsageError`` when none or several match)."""
        hits = []
        for d in self.model_dirs:
            tr, pl, cfg = d.name.split("__")
            if (configuration in (None, cfg)) and (trainer in (None, tr)) and (plans_name in (None, pl)):
                hits.append(d)
        if len(hits) == 1:
            return hits[0]
        names = ", ".join(d.name for d in self.model_dirs)
        if not hits:
            raise UsageError(f"The package holds no model matching {configuration or ''} (it holds: {names}).")
        raise UsageError(f"The package holds several models ({names}); choose one with -c CONFIG "
                         "(and --trainer / --plans).")


def extract_package(zip_path: str | os.PathLike[str], dest: str | os.PathLike[str], *,
                    max_bytes: int = DEFAULT_MAX_BYTES, max_members: int = DEFAULT_MAX_MEMBERS) -> ExtractedPackage:
    """Safely extract ``zip_path`` into the empty folder ``dest`` and verify it (see the module docstring)."""
    zip_path, dest = Path(zip_path), Path(dest)
    where = f"model package {zip_path}"
    if not zip_path.is_file():
        raise UsageError(f"Model package not found: {zip_path}")
    try:
        zf = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise UsageError(f"{where} is not a readable zip file ({exc}).") from exc
    dest.mkdir(parents=True, exist_ok=True)
    with zf:
        infos = zf.infolist()
        if len(infos) > max_members:
            raise UsageError(f"{where} has {len(infos)} members (limit {max_members}).")
        datasets: set[str] = set()
        seen: set[str] = set()
        written = 0
        files = []
        for info in infos:
            parts = _safe_parts(info, where)
            if "/".join(parts) in seen:
                raise UsageError(f"{where}: member {info.filename!r} appears twice.")
            seen.add("/".join(parts))
            datasets.add(parts[0])
            target = dest.joinpath(*parts)
            if info.is_dir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            written += _copy_member(zf, info, target, budget=max_bytes - written, where=where)
            files.append("/".join(parts))
    if len(datasets) != 1 or not DATASET_DIR_PATTERN.match(next(iter(datasets))):
        raise UsageError(f"{where}: expected one DatasetXXX_Name folder at the top, found {sorted(datasets)}.")
    dataset_name = next(iter(datasets))
    card = _verify(dest, dataset_name, files, where)
    model_dirs = tuple(d for d in sorted((dest / dataset_name).iterdir())
                       if d.is_dir() and len(d.name.split("__")) == 3 and (d / PLANS_JSON).is_file())
    if not model_dirs:
        raise UsageError(f"{where} holds no model folder (<Trainer>__<Plans>__<Config>/plans.json).")
    return ExtractedPackage(root=dest, dataset_name=dataset_name, model_dirs=model_dirs, card=card)


def _safe_parts(info: zipfile.ZipInfo, where: str) -> tuple[str, ...]:
    name = info.filename
    bad = None
    if info.flag_bits & 0x1:
        bad = "is encrypted"
    elif stat.S_ISLNK(info.external_attr >> 16):
        bad = "is a symbolic link"
    elif "\\" in name or name.startswith("/") or (len(name) > 1 and name[1] == ":") or "\x00" in name:
        bad = "has an absolute or non-portable path"
    parts = tuple(p for p in PurePosixPath(name).parts if p != ".")
    if bad is None and (not parts or any(p == ".." for p in parts)):
        bad = "leaves the package folder"
    if bad is not None:
        raise UsageError(f"{where}: member {name!r} {bad}; refusing to extract.")
    return parts


def _copy_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, target: Path, *, budget: int, where: str) -> int:
    """Copy one member, counting the bytes really produced (declared sizes are not trusted)."""
    n = 0
    with zf.open(info) as src, open(target, "xb") as out:
        while chunk := src.read(_CHUNK):
            n += len(chunk)
            if n > info.file_size or n > budget:
                raise UsageError(f"{where}: member {info.filename!r} expands beyond its declared size or the "
                                 f"package size limit; refusing to extract.")
            out.write(chunk)
    return n


def _verify(dest: Path, dataset_name: str, files: list[str], where: str) -> ModelCard | None:
    card_name = f"{dataset_name}/{MODEL_CARD}"
    if card_name not in files:
        log.info("%s has no %s (a reference package): files are not hash-checked.", where, MODEL_CARD)
        return None
    card = ModelCard.from_dict(read_json(dest / card_name, what="model card"), where=f"{where}: {card_name}")
    unlisted = sorted(set(files) - set(card.files) - {card_name})
    if unlisted:
        raise UsageError(f"{where}: {unlisted[0]} is not listed in {MODEL_CARD} (package altered?).")
    for name, digest in card.files.items():
        path = dest / name
        if name not in files or not path.is_file():
            raise UsageError(f"{where}: {name} is listed in {MODEL_CARD} but missing.")
        if sha256_file(path) != digest:
            raise UsageError(f"{where}: {name} does not match its SHA-256 in {MODEL_CARD} (package altered?).")
    return card


def sha256_file(path: Path) -> str:
    """SHA-256 (hex) of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


@contextmanager
def open_package(zip_path: str | os.PathLike[str], **limits: int) -> Iterator[ExtractedPackage]:
    """Extract a package into a temporary folder for the ``with`` block (``predict -m model.zip``)."""
    with tempfile.TemporaryDirectory(prefix="autounet-package-") as tmp:
        yield extract_package(zip_path, Path(tmp) / "package", **limits)


# ---- install ---------------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class InstallResult:
    dataset_name: str
    model_dirs: tuple[Path, ...]
    verified: bool


def install_package(zip_path: str | os.PathLike[str], results_root: str | os.PathLike[str], *,
                    overwrite: bool = False, **limits: int) -> InstallResult:
    """Install a package (ours or the reference's) into ``results_root`` (the workspace's ``results``).

    Extracts into a temporary folder beside the destination, verifies, then moves each model folder into place;
    an existing model folder is an error unless ``overwrite``.
    """
    results_root = Path(results_root)
    results_root.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".install-", dir=results_root))
    try:
        pkg = extract_package(zip_path, staging / "package", **limits)
        target = results_root / pkg.dataset_name
        existing = [target / d.name for d in pkg.model_dirs if (target / d.name).exists()]
        if existing and not overwrite:
            raise UsageError(f"{existing[0]} already exists; use --overwrite to replace it.")
        target.mkdir(parents=True, exist_ok=True)
        installed = []
        for item in sorted(pkg.dataset_dir.iterdir()):
            dst = target / item.name
            if dst.is_dir() and not dst.is_symlink():
                shutil.rmtree(dst)
            elif dst.exists() or dst.is_symlink():
                dst.unlink()
            item.replace(dst)
            if item in pkg.model_dirs:
                installed.append(dst)
        return InstallResult(dataset_name=pkg.dataset_name, model_dirs=tuple(installed), verified=pkg.card is not None)
    finally:
        shutil.rmtree(staging, ignore_errors=True)

