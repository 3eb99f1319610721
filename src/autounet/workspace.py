"""The workspace: the three roots (raw, preprocessed, results) and every artefact file name.

Resolution happens once, at the edge (CLI or top-level API), in :func:`resolve_workspace`; nothing deeper in the
package reads environment variables. Every artefact's file name is defined here and nowhere else.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from autounet.errors import DatasetError, UsageError, WorkspaceError
from autounet.names import check_name

# ---- artefact file names (single source of truth) -------------------------------------------------------------
DATASET_JSON = "dataset.json"
FINGERPRINT_JSON = "dataset_fingerprint.json"
SPLITS_JSON = "splits_final.json"
GT_SEGMENTATIONS_DIR = "gt_segmentations"
PLANS_JSON = "plans.json"
DEFAULT_TRAINER = "nnUNetTrainer"
DEFAULT_PLANS_NAME = "nnUNetPlans"  # the reference's default plans name (``nnUNetPlans.json``, ``nnUNetPlans_2d``)
DEFAULT_ROOT_NAME = "autounet_workspace"
DATASET_DIR_PATTERN = re.compile(r"^Dataset(\d{3})_(.+)$")

# ---- validation artefacts (evaluation, post-processing, ensembling, model selection, report) -------------------
SUMMARY_JSON = "summary.json"
VALIDATION_DIR = "validation"
POSTPROCESSING_JSON = "postprocessing.json"
POSTPROCESSED_DIR = "postprocessed"
ENSEMBLES_DIR = "ensembles"
ENSEMBLE_JSON = "ensemble.json"
INFERENCE_INFORMATION_JSON = "inference_information.json"
INFERENCE_INSTRUCTIONS_TXT = "inference_instructions.txt"
REPORT_DIR = "report"
REPORT_HTML = "index.html"
PROBABILITIES_ENDING = ".npz"
PROBABILITIES_META_ENDING = ".meta.json"
PREDICTED_NEXT_STAGE_DIR = "predicted_next_stage"  # 3d_lowres predictions that feed a cascade

# ---- prediction outputs (inference) ----------------------------------------------------------------------------
PREDICT_ARGS_JSON = "predict_args.json"

# ---- preprocessed cases (one set of files per case in a configuration's folder) --------------------------------
CASE_DATA_SUFFIX = ".b2nd"
CASE_SEG_SUFFIX = "_seg.b2nd"
CASE_LOCATIONS_SUFFIX = "_locations.npz"
CASE_PROPERTIES_SUFFIX = ".json"

# ---- a fold folder of a trained model (training) ---------------------------------------------------------------
TRAINING_CONFIG_JSON = "training_config.json"
TRAINING_LOG_JSONL = "training_log.jsonl"
TRAINING_LOG_TXT_PREFIX = "training_log_"  # + date and time + ".txt"
PROGRESS_PNG = "progress.png"
CHECKPOINT_LATEST = "checkpoint_latest.pth"
CHECKPOINT_BEST = "checkpoint_best.pth"
CHECKPOINT_FINAL = "checkpoint_final.pth"
FOLD_DIR_PREFIX = "fold_"


def folds_tag(folds: tuple[int, ...] | list[int]) -> str:
    """``0_1_2_3_4`` from ``(0, 1, 2, 3, 4)``."""
    return "_".join(str(f) for f in folds)


def crossval_dir_name(folds: tuple[int, ...] | list[int]) -> str:
    """``crossval_results_folds_0_1_2_3_4``: the merged validation predictions of one trained model."""
    return f"crossval_results_folds_{folds_tag(folds)}"


def ensemble_dir_name(model_a: str, model_b: str, folds: tuple[int, ...] | list[int]) -> str:
    """``ensemble___<A>___<B>___0_1_2_3_4`` (the reference's naming)."""
    return check_name(f"ensemble___{model_a}___{model_b}___{folds_tag(folds)}", what="ensemble name")


def dataset_dir_name(dataset_id: int, name: str) -> str:
    """``Dataset004_Hippocampus`` from ``(4, "Hippocampus")``."""
    if not 0 <= dataset_id <= 999:
        msg = f"Dataset id must be between 0 and 999, got {dataset_id}."
        raise UsageError(msg)
    return check_name(f"Dataset{dataset_id:03d}_{name}", what="dataset name")


def plans_file_name(plans_name: str) -> str:
    """File name of a plans file in the preprocessed dataset folder (``nnUNetPlans.json``)."""
    return f"{check_name(plans_name, what='plans name')}.json"


def data_identifier(plans_name: str, configuration: str) -> str:
    """Preprocessed sub-folder name, as the reference names it (``nnUNetPlans_3d_fullres``)."""
    check_name(plans_name, what="plans name")
    return f"{plans_name}_{check_name(configuration, what='configuration name')}"


def model_dir_name(trainer: str, plans_name: str, configuration: str) -> str:
    """``nnUNetTrainer__nnUNetPlans__3d_fullres``: one trained configuration in the results root."""
    check_name(trainer, what="trainer name")
    check_name(plans_name, what="plans name")
    return f"{trainer}__{plans_name}__{check_name(configuration, what='configuration name')}"


def fold_dir_name(fold: int | str) -> str:
    """``fold_0`` ... ``fold_4`` or ``fold_all``."""
    return check_name(f"{FOLD_DIR_PREFIX}{fold}", what="fold")


@dataclass(frozen=True)
class Workspace:
    """The three roots of an autounet workspace."""

    raw: Path
    preprocessed: Path
    results: Path
    #: whether a dataset.json ``dataset`` listing may name files outside its dataset folder (the user's opt-in)
    allow_external_data: bool = False

    @classmethod
    def at(cls, root: str | os.PathLike[str], *, allow_external_data: bool = False) -> Workspace:
        """A workspace with ``raw/``, ``preprocessed/`` and ``results/`` under one root."""
        root = Path(root).expanduser().resolve()
        return cls(raw=root / "raw", preprocessed=root / "preprocessed", results=root / "results",
                   allow_external_data=allow_external_data)

    def ensure(self) -> Workspace:
        """Create missing roots; raise ``WorkspaceError`` for a root that is a file or not writable."""
        for label, path in (("raw", self.raw), ("preprocessed", self.preprocessed), ("results", self.results)):
            if path.exists() and not path.is_dir():
                msg = f"The {label} root {path} exists but is a file, not a folder. Choose another --workspace."
                raise WorkspaceError(msg)
            try:
                path.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                msg = f"Cannot create the {label} root {path}: {exc.strerror}."
                raise WorkspaceError(msg) from exc
            if not os.access(path, os.W_OK):
                msg = f"The {label} root {path} is not writable. Fix its permissions or choose another --workspace."
                raise WorkspaceError(msg)
        return self

    # ---- per-dataset folders ---------------------------------------------------------------------------------
    def raw_dataset(self, dataset_name: str) -> Path:
        """``raw/DatasetXXX_Name``."""
        return self.raw / check_name(dataset_name, what="dataset name")

    def preprocessed_dataset(self, dataset_name: str) -> Path:
        """``preprocessed/DatasetXXX_Name``."""
        return self.preprocessed / check_name(dataset_name, what="dataset name")

    def results_dataset(self, dataset_name: str) -> Path:
        """``results/DatasetXXX_Name``."""
        return self.results / check_name(dataset_name, what="dataset name")

    def fingerprint_file(self, dataset_name: str) -> Path:
        """``preprocessed/DatasetXXX_Name/dataset_fingerprint.json``."""
        return self.preprocessed_dataset(dataset_name) / FINGERPRINT_JSON

    def plans_file(self, dataset_name: str, plans_name: str) -> Path:
        """``preprocessed/DatasetXXX_Name/<plans_name>.json``."""
        return self.preprocessed_dataset(dataset_name) / plans_file_name(plans_name)

    def preprocessed_dataset_json(self, dataset_name: str) -> Path:
        """Copy of the raw ``dataset.json`` beside the plans."""
        return self.preprocessed_dataset(dataset_name) / DATASET_JSON

    def splits_file(self, dataset_name: str) -> Path:
        """``preprocessed/DatasetXXX_Name/splits_final.json``."""
        return self.preprocessed_dataset(dataset_name) / SPLITS_JSON

    def gt_segmentations(self, dataset_name: str) -> Path:
        """Ground-truth label copies in the original geometry, for evaluation."""
        return self.preprocessed_dataset(dataset_name) / GT_SEGMENTATIONS_DIR

    def preprocessed_data(self, dataset_name: str, identifier: str) -> Path:
        """Folder of preprocessed cases of one configuration (``nnUNetPlans_3d_fullres``)."""
        return self.preprocessed_dataset(dataset_name) / check_name(identifier, what="data identifier")

    def model_dir(self, dataset_name: str, configuration: str, *, plans_name: str = DEFAULT_PLANS_NAME,
                  trainer: str = DEFAULT_TRAINER) -> Path:
        """``results/DatasetXXX_Name/<Trainer>__<Plans>__<Config>``."""
        return self.results_dataset(dataset_name) / model_dir_name(trainer, plans_name, configuration)

    # ---- dataset lookup ---------------------------------------------------------------------------------------
    def find_dataset(self, dataset: str | int | os.PathLike[str]) -> str:
        """Resolve a dataset given by id (``4``), name (``Dataset004_Hippocampus``) or raw path to its name."""
        text = os.fspath(dataset) if not isinstance(dataset, int) else str(dataset)
        if isinstance(dataset, int) or text.isdigit():
            return self._name_from_id(int(text))
        path = Path(text)
        if DATASET_DIR_PATTERN.match(path.name) and (path.is_dir() or len(path.parts) == 1):
            return path.name
        msg = (f"Cannot interpret dataset {text!r}: give an id (4), a name (Dataset004_Hippocampus) "
               "or the path of a DatasetXXX_Name folder.")
        raise UsageError(msg)

    def _name_from_id(self, dataset_id: int) -> str:
        prefix = f"Dataset{dataset_id:03d}_"
        found: set[str] = set()
        for root in (self.raw, self.preprocessed, self.results):
            if root.is_dir():
                found.update(p.name for p in root.iterdir() if p.is_dir() and p.name.startswith(prefix))
        if not found:
            msg = f"No dataset with id {dataset_id} in {self.raw}, {self.preprocessed} or {self.results}."
            raise DatasetError(msg)
        if len(found) > 1:
            msg = f"Dataset id {dataset_id} is ambiguous: {', '.join(sorted(found))}. Use the full name."
            raise DatasetError(msg)
        return found.pop()


def resolve_workspace(explicit: str | os.PathLike[str] | None = None, *,
                      environ: Mapping[str, str] | None = None, cwd: Path | None = None,
                      allow_external_data: bool = False) -> Workspace:
    """Resolve the workspace once, at the edge.

    Order: explicit argument (``--workspace``), then ``AUTOUNET_HOME``, then the reference's
    ``nnUNet_raw``/``nnUNet_preprocessed``/``nnUNet_results`` (all three must be set), then ``./autounet_workspace``.
    """
    ws = _resolve_roots(explicit, os.environ if environ is None else environ, cwd)
    return replace(ws, allow_external_data=allow_external_data) if allow_external_data else ws


def _resolve_roots(explicit: str | os.PathLike[str] | None, env: Mapping[str, str], cwd: Path | None) -> Workspace:
    if explicit is not None:
        return Workspace.at(explicit)
    if env.get("AUTOUNET_HOME"):
        return Workspace.at(env["AUTOUNET_HOME"])
    ref_keys = ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")
    if all(env.get(k) for k in ref_keys):
        raw, pre, res = (Path(env[k]).expanduser().resolve() for k in ref_keys)
        return Workspace(raw=raw, preprocessed=pre, results=res)
    return Workspace.at((cwd or Path.cwd()) / DEFAULT_ROOT_NAME)
