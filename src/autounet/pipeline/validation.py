"""Final validation of a trained fold: predict its validation cases with the real inference pipeline, evaluate.

This lives in the pipeline (not the training loop) so that training never imports inference. The result is the
reference's layout: ``fold_X/validation/<case><ending>`` (+ saved probabilities for ensembling) and
``fold_X/validation/summary.json``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from autounet._log import get_logger
from autounet.dataset import RawDataset, open_raw_dataset
from autounet.errors import AutounetError
from autounet.evaluation import EvaluationSummary, evaluate
from autounet.inference import Predictor
from autounet.inference.inputs import DICOM_ENDING, CaseInput
from autounet.io import segmentation_ending
from autounet.labels import LabelSpec
from autounet.training import fold_cases
from autounet.workspace import (
    DEFAULT_PLANS_NAME,
    DEFAULT_TRAINER,
    SUMMARY_JSON,
    VALIDATION_DIR,
    Workspace,
    fold_dir_name,
)

log = get_logger(__name__)


@dataclass(frozen=True)
class ValidationOptions:
    """How a fold is validated.

    Attributes:
        checkpoint: ``final`` or ``best``.
        save_probabilities: keep per-class probabilities (needed for ensembling in ``find-best``).
        device: inference device (``auto``, ``cpu``, ``cuda``, ``cuda:N``).
        use_mirroring: test-time mirroring (the reference validates with it).
        workers: evaluation processes.
        overwrite: predict cases again even if their output exists.
        progress: show progress bars.
    """

    checkpoint: str = "final"
    save_probabilities: bool = True
    device: str = "auto"
    use_mirroring: bool = True
    workers: int = 1
    overwrite: bool = False
    progress: bool = False


def validation_dir(workspace: Workspace, dataset_name: str, configuration: str, fold: int | str, *,
                   plans_name: str = DEFAULT_PLANS_NAME, trainer: str = DEFAULT_TRAINER) -> Path:
    """``results/<Dataset>/<Trainer>__<Plans>__<Config>/fold_X/validation``."""
    model_dir = workspace.model_dir(dataset_name, configuration, plans_name=plans_name, trainer=trainer)
    return model_dir / fold_dir_name(fold) / VALIDATION_DIR


def is_validated(workspace: Workspace, dataset_name: str, configuration: str, fold: int | str, *,
                 plans_name: str = DEFAULT_PLANS_NAME, trainer: str = DEFAULT_TRAINER) -> bool:
    """Whether the fold's ``validation/summary.json`` exists."""
    folder = validation_dir(workspace, dataset_name, configuration, fold, plans_name=plans_name, trainer=trainer)
    return (folder / SUMMARY_JSON).is_file()


def _validation_sources(raw: RawDataset, cases: list[str]) -> list[Path | CaseInput]:
    """The channel files of ``cases``; the cases themselves (their ids and listed files) when their files do not
    name them: a ``dataset`` listing, or DICOM series folders. Predictions of DICOM cases (series folders, ``.dcm``
    files) are ``.nii.gz`` files, like their references (:func:`autounet.io.segmentation_ending`)."""
    if not raw.explicit and not any(p.is_dir() for c in cases for p in raw.cases[c].images):
        return [path for case in cases for path in raw.cases[case].images]
    dicom_dataset = segmentation_ending(raw.spec.file_ending) != raw.spec.file_ending
    out: list[Path | CaseInput] = []
    for case in cases:
        images = raw.cases[case].images
        dicom = dicom_dataset or images[0].is_dir()
        out.append(CaseInput(case_id=case, images=images, ending=DICOM_ENDING if dicom else raw.spec.file_ending))
    return out


def validate_fold(workspace: Workspace, dataset_name: str, configuration: str, fold: int | str, *,
                  plans_name: str = DEFAULT_PLANS_NAME, trainer: str = DEFAULT_TRAINER,
                  options: ValidationOptions | None = None) -> EvaluationSummary:
    """Predict the validation cases of ``fold`` from the raw images and write ``validation/summary.json``.

    Raises:
        AutounetError: a validation case could not be predicted (its name and the reason are in the message).
    """
    options = options or ValidationOptions()
    raw = open_raw_dataset(workspace.raw_dataset(dataset_name), workspace)
    labelled = sorted(c for c, files in raw.cases.items() if files.label is not None)
    if str(fold) == "all":
        msg = "Fold 'all' trains on every case: it has no validation cases to predict."
        raise AutounetError(msg)
    _, val_cases = fold_cases(workspace.splits_file(dataset_name), labelled, fold)
    model_dir = workspace.model_dir(dataset_name, configuration, plans_name=plans_name, trainer=trainer)
    predictor = Predictor.from_model_dir(model_dir, folds=[fold], checkpoint=options.checkpoint,
                                         device=options.device, use_mirroring=options.use_mirroring)
    out = model_dir / fold_dir_name(fold) / VALIDATION_DIR
    sources = _validation_sources(raw, val_cases)
    log.info("Validating %s fold %s on %d cases.", configuration, fold, len(val_cases))
    report = predictor.predict_folder(sources, out, save_probabilities=options.save_probabilities,
                                      overwrite=options.overwrite)
    if report.failed:
        details = "; ".join(f"{f.case_id} ({f.stage}): {f.message}" for f in report.failed)
        msg = f"Validation of {configuration} fold {fold} failed for {len(report.failed)} case(s): {details}"
        raise AutounetError(msg)
    labels = LabelSpec.from_dataset_spec(raw.spec)
    return evaluate(out, workspace.gt_segmentations(dataset_name), labels=labels,
                    file_ending=segmentation_ending(raw.spec.file_ending),
                    workers=options.workers, progress=options.progress, output=out / SUMMARY_JSON)
