"""Golden file for evaluation: the reference's ``compute_metrics_on_folder`` on perturbed Hippocampus labels.

Takes the first 24 paired Hippocampus label maps (sorted), perturbs each deterministically (parameters drawn with
seed 7 and stored in the golden file: a one-voxel roll along one axis, then one label dilated or eroded by one
voxel with SciPy's default cross structure), runs the reference (nnunetv2 2.8.1, its own venv) on labels 1, 2 and
the region (1, 2), and writes ``tests/data/golden/evaluation/hippocampus_reference_summary.json`` with the
parameters and the reference's summary.

Usage: ``python benchmarks/golden/make_evaluation.py``
"""

from __future__ import annotations

import json
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from reference import REPO_ROOT, run_reference_python  # noqa: E402

SOURCE = REPO_ROOT.parent / "shared" / "datasets" / "Hippocampus"
OUT = REPO_ROOT / "tests" / "data" / "golden" / "evaluation" / "hippocampus_reference_summary.json"
N_CASES = 24


def perturb(seg: np.ndarray, params: dict) -> np.ndarray:
    """Apply one case's perturbation (the same function is re-implemented in the integration test)."""
    from scipy import ndimage

    pred = np.roll(seg, params["shift"], axis=params["axis"])
    mask = pred == params["label"]
    pred = pred.copy()
    if params["grow"]:
        pred[ndimage.binary_dilation(mask) & (pred == 0)] = params["label"]
    else:
        pred[mask & ~ndimage.binary_erosion(mask)] = 0
    return pred


def main() -> None:
    from autounet.io import read_segmentation, write_segmentation

    rng = np.random.default_rng(7)
    cases = sorted(p.name for p in (SOURCE / "images").glob("*.nii.gz") if (SOURCE / "labels" / p.name).is_file())
    params = {}
    with tempfile.TemporaryDirectory() as tmp:
        ref_dir, pred_dir = Path(tmp) / "ref", Path(tmp) / "pred"
        ref_dir.mkdir()
        pred_dir.mkdir()
        for name in cases[:N_CASES]:
            p = {"shift": int(rng.choice([-1, 1])), "axis": int(rng.integers(0, 3)), "label": int(rng.integers(1, 3)),
                 "grow": bool(rng.random() < 0.5)}
            params[name] = p
            seg, geometry = read_segmentation(SOURCE / "labels" / name)
            write_segmentation(seg[0], ref_dir / name, geometry)
            write_segmentation(perturb(seg[0], p), pred_dir / name, geometry)
        out = Path(tmp) / "summary.json"
        code = textwrap.dedent(f"""
            from nnunetv2.evaluation.evaluate_predictions import compute_metrics_on_folder
            from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO
            if __name__ == "__main__":
                compute_metrics_on_folder({str(ref_dir)!r}, {str(pred_dir)!r}, {str(out)!r}, SimpleITKIO(),
                                          ".nii.gz", [1, 2, (1, 2)], None, 1)
        """)
        script = Path(tmp) / "run.py"
        script.write_text(code)
        run_reference_python(f"import runpy; runpy.run_path({str(script)!r}, run_name='__main__')", Path(tmp))
        summary = json.loads(out.read_text(encoding="utf-8"))
    for entry in summary["metric_per_case"]:  # keep only file names (paths were temporary)
        entry["prediction_file"] = Path(entry["prediction_file"]).name
        entry["reference_file"] = Path(entry["reference_file"]).name
    OUT.parent.mkdir(parents=True, exist_ok=True)
    OUT.write_text(json.dumps({"made_by": "benchmarks/golden/make_evaluation.py", "reference": "nnunetv2 2.8.1",
                               "perturbations": params, "reference_summary": summary}, indent=1))
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
