"""The :class:`Predictor`: created once from a trained model folder, then used on arrays, files or folders.

Example::

    from autounet.inference import Predictor
    predictor = Predictor.from_model_dir("results/Dataset004_Hippocampus/nnUNetTrainer__nnUNetPlans__3d_fullres",
                                         folds=(0,), device="cpu")
    seg = predictor.predict(image, spacing=(1.0, 1.0, 1.0)).segmentation          # NumPy in, NumPy out
    predictor.predict_file(["case_0000.nii.gz"], "out/case.nii.gz")               # same geometry and file type
    report = predictor.predict_folder("imagesTs", "predictions")                  # a pipeline over cases

Per case: read → preprocess (the training code path) → sliding window over every fold with mirroring → export
(resample back, segment, revert crop and transpose) → write atomically. ``3d_cascade_fullres`` models run their
``3d_lowres`` stage first (or reuse its predictions).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from autounet._atomic import write_json_atomic
from autounet._log import get_logger
from autounet._progress import Ticker
from autounet.errors import UsageError
from autounet.inference import probabilities as _probabilities
from autounet.inference.arrays import Device, device_type
from autounet.inference.export import CaseGeometry, ExportResult, ProbabilityResampling, export_logits
from autounet.inference.inputs import CaseInput, check_channels, discover_cases, shard
from autounet.inference.model import LoadedModel, load_model, resolve_device
from autounet.inference.runner import RunReport, Stages, run_cases
from autounet.inference.sliding import SlidingWindowOptions, predict_sliding_window
from autounet.io import ImageGeometry, read_images, read_segmentation, write_segmentation
from autounet.io.geometry import as_spacing
from autounet.names import check_file_ending, check_name
from autounet.schemas._base import make_provenance
from autounet.schemas.results import PredictArgs, save_predict_args
from autounet.workspace import DATASET_JSON, PLANS_JSON, PREDICT_ARGS_JSON, model_dir_name

log = get_logger(__name__)

DICOM_OUTPUT_ENDING = ".nii.gz"
#: ``--output-format`` values that write a DICOM Segmentation referencing the input series
DICOM_SEG_FORMATS = ("dicom-seg", "dicom_seg", "seg")
DICOM_SEG_ENDING = ".dcm"
#: how much lower the reading and export threads run when the network shares their CPU cores (see runner)
CPU_READER_NICE = 10


@dataclass
class Prediction:
    """A prediction in the input's array geometry (``(z, y, x)``; 2D images ``(1, H, W)``)."""

    segmentation: np.ndarray
    probabilities: np.ndarray | None = None
    geometry: ImageGeometry | None = None


@dataclass
class _Loaded:
    """A preprocessed case waiting for the network."""

    data: np.ndarray
    case: CaseGeometry
    geometry: ImageGeometry


@dataclass
class _Job:
    """One case of a folder prediction with its output paths."""

    case: CaseInput
    output: Path
    previous: Path | None = None


class Predictor:
    """Predicts with one trained configuration (one or more folds).

    Build with :meth:`from_model_dir`. Options are fixed at construction: tiling, mirroring, tile batch, device.
    """

    def __init__(self, model: LoadedModel, *, device: Device, options: SlidingWindowOptions,
                 previous_stage: Predictor | None = None, backend: str = "torch") -> None:
        if model.is_cascade and previous_stage is None:
            msg = (f"{model.configuration.name} is a cascade stage: it needs the predictor of "
                   f"{model.configuration.previous_stage}.")
            raise UsageError(msg)
        self.model = model
        self.device = device
        self.options = options
        self.previous_stage = previous_stage
        self.backend = backend
        self.resampling = ProbabilityResampling.from_component(model.configuration.resampling_probabilities)
        from autounet.preprocessing import preprocessing_hash

        self._plans_sha256 = preprocessing_hash(model.plans, model.configuration, model.labels)

    # ---- construction --------------------------------------------------------------------------------------------
    @classmethod
    def from_model_dir(cls, model_dir: str | os.PathLike[str], *, folds: Sequence[int | str] | int | str | None = None,
                       checkpoint: str = "final", device: Any = "auto", tile_batch: int | None = None,
                       use_mirroring: bool = True, step: float = 0.5, precision: str = "auto",
                       previous_stage_model: str | os.PathLike[str] | None = None, backend: str = "torch",
                       threads: int | None = None) -> Predictor:
        """Load a model folder (``<Trainer>__<Plans>__<Config>``) for prediction.

        Args:
            model_dir: the trained configuration's folder.
            folds: folds to ensemble (default: every ``fold_<k>`` with the checkpoint, ``fold_all`` excluded).
            checkpoint: ``final`` or ``best`` (or ``latest``).
            device: ``auto`` (CUDA when available), ``cpu``, ``cuda``, ``cuda:N``, ``mps``.
            tile_batch: tiles per network call; None chooses from free memory.
            use_mirroring: test-time mirroring over the axes the model was trained with.
            step: tile step as a fraction of the patch size.
            precision: network precision (``auto``, ``fp32``, ``bf16``, ``fp16``): reduced precision on CUDA by
                default; on the CPU float32 unless ``bf16`` is asked for (torch and openvino backends, CPUs with
                native bf16).
            previous_stage_model: cascades only: the ``3d_lowres`` model folder (default: the sibling folder
                with the same trainer and plans).
            backend: what runs the network: ``torch`` (default), ``onnxruntime`` or ``openvino`` (both also read an
                ``.onnx`` file written by ``autounet export-model --format onnx`` in place of ``model_dir``, and
                then never import torch).
            threads: intra-op threads of backends with their own thread pool (ONNX Runtime, OpenVINO); ``None``:
                the runtime's default.
        """
        from autounet.inference.backends import get_backend

        engine = get_backend(backend)
        dev = engine.buffer_device(device)
        engine.check_precision(precision, dev)  # an unavailable precision fails here, before any case is read
        if str(model_dir).endswith(".onnx"):
            if engine.name not in ("onnxruntime", "openvino"):
                msg = f"{model_dir} is an ONNX model: predict it with --backend onnxruntime or openvino."
                raise UsageError(msg)
            from autounet.inference.onnx_runtime import load_onnx_model

            model = load_onnx_model(model_dir, threads=threads, device=device, runtime=engine.name,
                                    precision=precision)
        else:
            model = load_model(model_dir, folds=folds, checkpoint=checkpoint,
                               device=resolve_device("cpu") if engine.name != "torch" else dev)
        engine.prepare(model, device=device, threads=threads, precision=precision)
        options = SlidingWindowOptions(step=step, mirror_axes=model.mirror_axes if use_mirroring else (),
                                       tile_batch=tile_batch, precision=precision, cpu_streams=engine.cpu_streams)
        previous = None
        if model.is_cascade:
            prev_dir = Path(previous_stage_model) if previous_stage_model is not None else \
                model.model_dir.parent / model_dir_name(model.trainer, model.plans.plans_name,
                                                        str(model.configuration.previous_stage))
            previous = cls.from_model_dir(prev_dir, folds=model.folds, checkpoint=checkpoint, device=device,
                                          tile_batch=tile_batch, use_mirroring=use_mirroring, step=step,
                                          precision=precision, backend=backend, threads=threads)
        return cls(model, device=dev, options=options, previous_stage=previous, backend=engine.name)

    # ---- properties ----------------------------------------------------------------------------------------------
    @property
    def configuration_name(self) -> str:
        return self.model.configuration.name

    @property
    def num_channels(self) -> int:
        """Image channels the model expects (cascade channels excluded)."""
        return self.model.dataset.num_channels

    @property
    def file_ending(self) -> str:
        return self.model.dataset.file_ending

    def settings(self) -> dict[str, Any]:
        """The resolved inference settings (recorded beside outputs)."""
        return {"step": self.options.step, "mirror_axes": list(self.options.mirror_axes),
                "use_gaussian": self.options.use_gaussian, "tile_batch": self.options.tile_batch,
                "precision": self.options.precision, "device": str(self.device), "backend": self.backend}

    def model_info(self) -> dict[str, Any]:
        """Which model produced the outputs."""
        m = self.model
        return {"dataset": m.plans.dataset_name, "plans": m.plans.plans_name, "configuration": m.configuration.name,
                "trainer": m.trainer, "folds": list(m.folds), "checkpoint": m.checkpoint,
                "model_dir": str(m.model_dir)}

    # ---- the three steps -----------------------------------------------------------------------------------------
    def preprocess(self, images: np.ndarray, geometry: ImageGeometry, *,
                   previous_segmentation: np.ndarray | None = None, case_id: str = "case",
                   copy: bool = True) -> _Loaded:
        """Preprocess one case as in training; cascades stack the one-hot previous-stage segmentation.

        ``copy=False`` lets preprocessing work inside ``images`` (one volume less memory); they are then spoiled.
        """
        from autounet.preprocessing import preprocess_case

        images = _check_images(images, self.num_channels)
        seg = None
        if previous_segmentation is not None:
            seg = np.asarray(previous_segmentation)
            seg = seg[None] if seg.ndim == 3 else seg
        pre = preprocess_case(images, seg, geometry, self.model.plans, self.model.configuration,
                              labels=self.model.labels, case_id=case_id, plans_sha256=self._plans_sha256,
                              copy=copy)
        data = pre.data
        if self.model.is_cascade:
            data = np.concatenate([data, _one_hot(pre.seg[0], self.model.labels.foreground_labels)])
        case = CaseGeometry.from_properties(pre.properties, transpose_forward=self.model.plans.transpose_forward,
                                            transpose_backward=self.model.plans.transpose_backward)
        return _Loaded(data=data, case=case, geometry=geometry)

    def predict_logits(self, data: Any) -> Any:
        """Fold-averaged logits of a preprocessed case (float32, in the backend's array library: on the device, or
        on the CPU after an out-of-memory error on the GPU)."""
        config = self.model.configuration
        kwargs: dict[str, Any] = dict(patch_size=config.patch_size, num_outputs=self.model.labels.num_outputs,
                      options=self.options, device=self.device)
        if device_type(self.device) != "cuda":
            return predict_sliding_window(self.model.networks, data, **kwargs)
        import torch

        try:
            return predict_sliding_window(self.model.networks, data, **kwargs, results_device=self.device)
        except torch.OutOfMemoryError:
            log.warning("Out of GPU memory with the buffers on the GPU; predicting again with them in host memory.")
            torch.cuda.empty_cache()
            return predict_sliding_window(self.model.networks, data, **kwargs, results_device=torch.device("cpu"))

    def export(self, logits: Any, case: CaseGeometry, *, with_probabilities: bool = False) -> ExportResult:
        """Logits in preprocessed space → segmentation (and probabilities) in the original array geometry."""
        return export_logits(logits, case, config_spacing=self.model.configuration.spacing, labels=self.model.labels,
                             resampling=self.resampling, with_probabilities=with_probabilities)

    # ---- arrays --------------------------------------------------------------------------------------------------
    def predict(self, images: np.ndarray, spacing: Sequence[float] | ImageGeometry, *,
                previous_segmentation: np.ndarray | None = None,
                return_probabilities: bool = False) -> Prediction:
        """Predict a NumPy image ``(c, z, y, x)`` (or ``(z, y, x)`` for one channel) given its spacing or geometry.

        The array must be in the reader's axis order (SimpleITK's ``(z, y, x)`` if in doubt) with ``spacing`` in
        the same order. Cascades run their previous stage first unless ``previous_segmentation`` is given.
        """
        geometry = spacing if isinstance(spacing, ImageGeometry) else ImageGeometry(spacing=as_spacing(spacing))
        images = _check_images(images, self.num_channels)
        if self.model.is_cascade and previous_segmentation is None:
            assert self.previous_stage is not None
            previous_segmentation = self.previous_stage.predict(images, geometry).segmentation
        loaded = self.preprocess(images, geometry, previous_segmentation=previous_segmentation)
        result = self.export(self.predict_logits(loaded.data), loaded.case, with_probabilities=return_probabilities)
        return Prediction(segmentation=result.segmentation, probabilities=result.probabilities, geometry=geometry)

    # ---- files ---------------------------------------------------------------------------------------------------
    def predict_file(self, images: Sequence[str | os.PathLike[str]] | str | os.PathLike[str],
                     output: str | os.PathLike[str], *, save_probabilities: bool = False,
                     previous_segmentation: str | os.PathLike[str] | None = None) -> Path:
        """Predict one case from its channel files (or a DICOM series folder) and write ``output`` atomically.

        The segmentation gets the input's geometry; its file type follows ``output``'s ending. With
        ``save_probabilities``, ``<case>.npz`` and ``<case>.meta.json`` are written beside it.
        """
        paths = [images] if isinstance(images, (str, os.PathLike)) else list(images)
        output = Path(output)
        case_id = _strip_ending(output.name)
        job = _Job(CaseInput(case_id, tuple(Path(p) for p in paths), ""), output,
                   Path(previous_segmentation) if previous_segmentation is not None else None)
        loaded = self._load_job(job)
        self._export_job(job, loaded, self.predict_logits(loaded.data), save_probabilities=save_probabilities)
        return output

    def _load_job(self, job: _Job) -> _Loaded:
        if job.case.error is not None:
            raise UsageError(job.case.error)
        images, geometry = read_images(list(job.case.images))
        check_channels(job.case, int(images.shape[0]), self.num_channels)
        previous = None
        if self.model.is_cascade:
            if job.previous is not None:
                previous, _ = read_segmentation(job.previous)
            else:
                assert self.previous_stage is not None
                prev = self.previous_stage
                first = prev.preprocess(images, geometry, case_id=job.case.case_id)
                previous = prev.export(prev.predict_logits(first.data), first.case).segmentation
        return self.preprocess(images, geometry, previous_segmentation=previous, case_id=job.case.case_id,
                               copy=False)

    def _predict_job(self, loaded: _Loaded) -> Any:
        logits = self.predict_logits(loaded.data)
        loaded.data = None  # type: ignore[assignment]  # free the input while the case waits for export
        return logits

    def _export_job(self, job: _Job, loaded: _Loaded, logits: Any, *, save_probabilities: bool) -> None:
        result = self.export(logits, loaded.case, with_probabilities=save_probabilities)
        del logits
        geometry = loaded.geometry
        if job.output.name.endswith(DICOM_SEG_ENDING):
            geometry = geometry.replace(extras={**geometry.extras, "segment_labels": self.segment_labels()})
        write_segmentation(_for_writing(result.segmentation, loaded.geometry), job.output, geometry)
        if save_probabilities and result.probabilities is not None:
            _probabilities.save_probabilities(job.output.parent, job.case.case_id, result.probabilities,
                               geometry=loaded.geometry, labels=self.model.labels,
                               file_ending=_ending_of(job.output.name))

    # ---- folders -------------------------------------------------------------------------------------------------
    def predict_folder(self, source: str | os.PathLike[str] | Sequence[str | os.PathLike[str] | CaseInput],
                       output_dir: str | os.PathLike[str], *, save_probabilities: bool = False,
                       overwrite: bool = False, part: int = 0, parts: int = 1, output_format: str | None = None,
                       previous_stage_dir: str | os.PathLike[str] | None = None,
                       on_done: Callable[[str], None] | None = None,
                       on_start: Callable[[int], None] | None = None) -> RunReport:
        """Predict every case of ``source`` (a folder, a list of files or DICOM series folders, or
        :class:`~autounet.inference.inputs.CaseInput` cases) into ``output_dir``.

        Existing outputs are skipped unless ``overwrite``. Cases are sharded ``[part::parts]``. Reading and
        preprocessing of the next case and export of the previous one overlap with the network's work. Failed cases
        are listed in the returned report (the others still finish). Cascades first predict (or reuse) their
        ``3d_lowres`` stage into ``previous_stage_dir`` (default ``<output_dir>/<previous configuration>``).
        ``on_start(n_cases)`` and ``on_done(case_id)`` drive a progress display; without ``on_done`` each case is
        logged (INFO) with the seconds per case and the ETA.
        """
        sources = [source] if isinstance(source, (str, os.PathLike)) else list(source)
        output_dir = Path(output_dir)
        if output_dir.exists() and not output_dir.is_dir():
            msg = f"The output {output_dir} is a file, not a folder: give a folder (it is created if missing)."
            raise UsageError(msg)
        cases = shard(discover_cases(sources, num_channels=self.num_channels), part=part, parts=parts)
        for c in cases:
            check_name(c.case_id, what="case id", where=str(c.images[0]))
        jobs = [_Job(c, output_dir / f"{c.case_id}{self._output_ending(c, output_format)}") for c in cases]
        report = RunReport()
        todo = []
        for job in jobs:
            if not overwrite and _outputs_exist(job.output, save_probabilities):
                report.skipped.append(job.case.case_id)
            else:
                todo.append(job)
        self._write_run_files(output_dir, sources=sources, save_probabilities=save_probabilities)
        if todo and self.model.is_cascade:
            self._run_previous_stage(sources, todo, output_dir, previous_stage_dir, part=part, parts=parts,
                                     report=report)
        if on_start is not None:
            on_start(len(todo))
        if on_done is None and todo:
            ticker = Ticker(len(todo), what=f"predict {output_dir.name}", logger=log, unit="case", every=True)

            def on_done(case_id: str) -> None:
                ticker.update(detail=case_id)
        stages: Stages[_Job] = Stages(
            load=self._load_job, predict=self._predict_job,
            export=lambda job, loaded, logits: self._export_job(job, loaded, logits,
                                                                save_probabilities=save_probabilities))
        on_cpu = device_type(self.device) == "cpu"
        run = run_cases(todo, stages, case_id=lambda j: j.case.case_id, on_done=on_done,
                        export_workers=1 if on_cpu else 2, background_nice=CPU_READER_NICE if on_cpu else 0)
        report.written.extend(run.written)
        report.failed.extend(run.failed)
        report.seconds = run.seconds
        return report

    def segment_labels(self) -> dict[int, str]:
        """Foreground output value -> name from dataset.json (regions: their ``regions_class_order`` values)."""
        labels = self.model.dataset.labels
        named = {name: value for name, value in labels.items() if name not in ("background", "ignore")}
        if all(isinstance(v, int) for v in named.values()):
            return {int(v): name for name, v in named.items() if int(v) != 0}  # type: ignore[arg-type]
        order = self.model.dataset.regions_class_order or ()
        return {int(v): name for name, v in zip(named, order)}

    def _output_ending(self, case: CaseInput, output_format: str | None) -> str:
        if output_format and output_format.lower() in DICOM_SEG_FORMATS:
            if not case.is_dicom:
                msg = (f"--output-format {output_format} needs DICOM series inputs; case {case.case_id} is a "
                       f"{case.ending} file.")
                raise UsageError(msg)
            return DICOM_SEG_ENDING
        if output_format:
            check_name(output_format, what="output format")
            return check_file_ending(output_format if output_format.startswith(".") else f".{output_format}",
                                     what="output format")
        if case.is_dicom:
            return DICOM_OUTPUT_ENDING
        if case.ending.lower() in (".jpg", ".jpeg"):  # a segmentation is never written lossy: PNG instead
            return ".png"
        return case.ending

    def _run_previous_stage(self, sources: list[Any], todo: list[_Job], output_dir: Path,
                            previous_stage_dir: str | os.PathLike[str] | None, *, part: int, parts: int,
                            report: RunReport) -> None:
        assert self.previous_stage is not None
        prev_dir = Path(previous_stage_dir) if previous_stage_dir is not None else \
            output_dir / str(self.model.configuration.previous_stage)
        log.info("Cascade: predicting (or reusing) %s into %s", self.previous_stage.configuration_name, prev_dir)
        prev_report = self.previous_stage.predict_folder(sources, prev_dir, part=part, parts=parts,
                                                         output_format=None)
        failed = {f.case_id: f for f in prev_report.failed}
        keep = []
        for job in todo:
            prev_ending = self.previous_stage._output_ending(job.case, None)
            job.previous = prev_dir / f"{job.case.case_id}{prev_ending}"
            if job.case.case_id in failed:
                report.failed.append(failed[job.case.case_id])
            else:
                keep.append(job)
        todo[:] = keep

    def _write_run_files(self, output_dir: Path, *, sources: list[Any], save_probabilities: bool) -> None:
        output_dir.mkdir(parents=True, exist_ok=True)
        write_json_atomic(output_dir / DATASET_JSON, self.model.dataset.to_dict())
        write_json_atomic(output_dir / PLANS_JSON, self.model.plans.to_dict())
        inputs = tuple(str(p) for s in sources for p in (s.images if isinstance(s, CaseInput) else (s,)))
        record = PredictArgs(inputs=inputs, model=self.model_info(),
                             settings=self.settings(), save_probabilities=save_probabilities)
        save_predict_args(output_dir / PREDICT_ARGS_JSON, record,
                          provenance=make_provenance("autounet.inference.predictor"))


def _check_images(images: np.ndarray, num_channels: int) -> np.ndarray:
    images = np.asarray(images)
    if images.ndim == 3 and num_channels == 1:
        images = images[None]
    if images.ndim != 4 or images.shape[0] != num_channels:
        msg = (f"Expected an image of shape (c, z, y, x) with c = {num_channels} channel(s) "
               f"(2D: (c, 1, H, W)), got {images.shape}.")
        raise UsageError(msg)
    return images


def _one_hot(seg: np.ndarray, labels: Sequence[int]) -> np.ndarray:
    """One channel per foreground label (-1 and 0 map to all zeros), float32."""
    return np.stack([(seg == lab) for lab in labels]).astype(np.float32)


def _for_writing(segmentation: np.ndarray, geometry: ImageGeometry) -> np.ndarray:
    return segmentation[None] if segmentation.ndim == 3 else segmentation


def _ending_of(name: str) -> str:
    for ending in (".nii.gz", ".seg.nrrd"):
        if name.endswith(ending):
            return ending
    return "." + name.rsplit(".", 1)[1] if "." in name else ""


def _strip_ending(name: str) -> str:
    ending = _ending_of(name)
    return name[: -len(ending)] if ending else name


def _outputs_exist(output: Path, save_probabilities: bool) -> bool:
    if not output.is_file():
        return False
    if save_probabilities:
        return all(p.is_file() for p in _probabilities.probability_paths(output.parent, _strip_ending(output.name)))
    return True
