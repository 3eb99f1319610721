"""``autounet predict``: segment images with a trained model (sliding window, mirroring, fold ensemble).

Outputs carry the input's geometry and file type, are written atomically, and existing ones are skipped unless
``--overwrite``. Failed cases are listed at the end (exit code 1) while the others still finish.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from autounet.precision import PRECISIONS
from autounet.workspace import DEFAULT_PLANS_NAME

NAME = "predict"
HELP = "segment images with a trained model (folder, file list or DICOM series)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags of ``autounet predict``."""
    parser.add_argument("-i", "--input", nargs="+", required=True, metavar="INPUT",
                        help="a folder of <case>_0000<ending> files, a list of files, or DICOM series folder(s)")
    parser.add_argument("-o", "--output", required=True, metavar="DIR", help="output folder")
    model = parser.add_argument_group("model (either -d and -c, or -m; -c picks a model in a zip)")
    model.add_argument("-d", "--dataset", help="dataset id (4) or name (Dataset004_Hippocampus) in the workspace")
    model.add_argument("-c", "--configuration", help="configuration (2d, 3d_fullres, 3d_lowres, 3d_cascade_fullres)")
    model.add_argument("--plans", default=DEFAULT_PLANS_NAME, help=f"plans identifier (default {DEFAULT_PLANS_NAME})")
    model.add_argument("--trainer", default=None, help="trainer name in the model folder (default nnUNetTrainer)")
    model.add_argument("-m", "--model", metavar="MODEL_FOLDER|ZIP|ONNX",
                       help="a trained model folder (<Trainer>__<Plans>__<Config>) outside a workspace, a model "
                            "package zip (export-model / nnU-Net), extracted safely to a temporary folder, or an "
                            ".onnx file (with --backend onnxruntime or openvino)")
    parser.add_argument("-f", "--folds", nargs="+", default=None,
                        help="folds to ensemble (default: every fold with the checkpoint, fold_all excluded)")
    parser.add_argument("--checkpoint", choices=("final", "best", "latest"), default="final",
                        help="checkpoint of each fold (default final)")
    parser.add_argument("--step", type=float, default=0.5, help="tile step as a fraction of the patch (default 0.5)")
    parser.add_argument("--no-tta", dest="tta", action="store_false", help="no test-time mirroring (8x faster in 3D)")
    parser.add_argument("--save-probabilities", action="store_true",
                        help="also write <case>.npz (probabilities) and <case>.meta.json for ensembling")
    parser.add_argument("--device", default="auto", help="auto (default), cpu, cuda, cuda:N or mps")
    parser.add_argument("--tile-batch", type=int, default=None, metavar="N",
                        help="tiles per network call (default: chosen from free memory)")
    parser.add_argument("--precision", choices=PRECISIONS, default="auto",
                        help="network precision (default auto: bf16 or fp16 on CUDA, fp32 on the CPU); bf16 on a "
                             "CPU with native bf16 (AVX512-BF16, AMX) is about 2x faster, an opt-in")
    parser.add_argument("--threads", type=int, default=None,
                        help="CPU threads of torch, ONNX Runtime or OpenVINO (default: the library's own)")
    parser.add_argument("--backend", choices=("torch", "onnxruntime", "openvino"), default="torch",
                        help="what runs the network: torch (default), onnxruntime (converts the model in memory, "
                             "or give -m MODEL.onnx from 'autounet export-model --format onnx') or openvino "
                             "(optional package; CPU)")
    parser.add_argument("--overwrite", action="store_true", help="predict cases whose outputs already exist")
    parser.add_argument("--output-format", metavar="EXT", default=None,
                        help="output file ending (.nii.gz, .nrrd, .mha, ...; default: the input's; DICOM series "
                             "inputs: .nii.gz, or dicom-seg for a DICOM SEG object referencing the series)")
    parser.add_argument("--part", type=int, default=0, metavar="K", help="predict only part K of --parts (0-based)")
    parser.add_argument("--parts", type=int, default=1, metavar="N", help="split the cases into N parts")
    parser.add_argument("--prev-stage", metavar="DIR", default=None,
                        help="cascades: folder with (or for) the 3d_lowres predictions (default OUTPUT/3d_lowres)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")


def _model_dir(args: argparse.Namespace, ctx: Any, stack: Any) -> Any:
    import zipfile
    from pathlib import Path

    from autounet.errors import UsageError

    if args.model and Path(args.model).is_file() and zipfile.is_zipfile(args.model):
        if args.dataset:
            raise UsageError("Give either -m MODEL.zip (with -c to pick a model) or -d DATASET, not both.")
        from autounet.inference.package import open_package

        package = stack.enter_context(open_package(args.model))
        return package.select(configuration=args.configuration, trainer=args.trainer,
                              plans_name=args.plans if args.plans != DEFAULT_PLANS_NAME else None)
    if args.model:
        if args.dataset or args.configuration:
            raise UsageError("Give either -m MODEL_FOLDER or -d DATASET -c CONFIG, not both.")
        return Path(args.model)
    if not (args.dataset and args.configuration):
        raise UsageError("Name the model: -d DATASET -c CONFIG (in the workspace) or -m MODEL_FOLDER.")
    from autounet.workspace import DEFAULT_TRAINER

    workspace = ctx.workspace()
    dataset = workspace.find_dataset(args.dataset)
    return workspace.model_dir(dataset, args.configuration, plans_name=args.plans,
                               trainer=args.trainer or DEFAULT_TRAINER)


def _progress(enabled: bool) -> tuple[Any, Any, Any]:
    state: dict[str, Any] = {}
    if not enabled:
        return None, None, lambda: None
    from tqdm import tqdm

    def start(n: int) -> None:
        state["bar"] = tqdm(total=n, desc="predict", unit="case", file=sys.stderr)

    def done(_case: str) -> None:
        if "bar" in state:
            state["bar"].update()

    def close() -> None:
        if "bar" in state:
            state["bar"].close()

    return start, done, close


def run(args: argparse.Namespace, ctx: Any) -> int:
    """Predict, then list written/skipped/failed cases."""
    import json
    from contextlib import ExitStack

    from autounet._parallel import current_executor
    from autounet.inference import Predictor

    if args.threads and args.backend == "torch":  # the other backends get them from Predictor (no torch import)
        import torch

        torch.set_num_threads(args.threads)
    with ExitStack() as stack:  # a zipped model stays extracted while predicting
        executor = current_executor()  # --cluster: one task per case on the cluster's workers
        model_dir = _model_dir(args, ctx, stack)
        predictor = Predictor.from_model_dir(model_dir, folds=args.folds, checkpoint=args.checkpoint,
                                             device="cpu" if executor is not None else args.device,
                                             tile_batch=args.tile_batch, use_mirroring=args.tta, step=args.step,
                                             precision=args.precision, backend=args.backend,
                                             threads=args.threads)
        start, done, close = _progress(ctx.progress)
        try:
            if executor is not None:
                from autounet.inference.distributed import ModelSpec, predict_folder_on

                spec = ModelSpec(str(model_dir), folds=tuple(predictor.model.folds), checkpoint=args.checkpoint,
                                 device=args.device, tile_batch=args.tile_batch, use_mirroring=args.tta,
                                 step=args.step, precision=args.precision, backend=args.backend,
                                 threads=args.threads)
                report = predict_folder_on(executor, predictor, spec, args.input, args.output,
                                           save_probabilities=args.save_probabilities, overwrite=args.overwrite,
                                           part=args.part, parts=args.parts, output_format=args.output_format,
                                           on_start=start, on_done=done)
            else:
                report = predictor.predict_folder(args.input, args.output,
                                                  save_probabilities=args.save_probabilities,
                                                  overwrite=args.overwrite, part=args.part, parts=args.parts,
                                                  output_format=args.output_format,
                                                  previous_stage_dir=args.prev_stage, on_start=start, on_done=done)
        finally:
            close()
    if args.json:
        print(json.dumps({"written": report.written, "skipped": report.skipped, "seconds": report.seconds,
                          "failed": [f.__dict__ for f in report.failed]}))
    else:
        print(f"{len(report.written)} written, {len(report.skipped)} skipped (existing), {len(report.failed)} failed "
              f"in {report.seconds:.1f} s -> {args.output}")
        for f in report.failed:
            print(f"  FAILED {f.case_id} ({f.stage}): {f.message}", file=sys.stderr)
    return 0 if report.ok else 1
