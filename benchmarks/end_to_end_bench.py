"""End to end on real data: ``autounet run`` on Hippocampus with held-out test images, then the written instructions.

Steps (everything through the public CLI, each step a fresh ``autounet`` process):

1. Split the image/label pairs of ``../shared/datasets/Hippocampus`` (symlinks): every ``--test-every``-th case
   (sorted by name, offset ``test-every // 2``) is kept out as a test set; the rest is imported as dataset 4.
2. ``autounet run 4 -c CONFIGS --budget BUDGET`` (timed). The run is resumable, so a second call of this script
   only re-checks, re-selects and re-writes the report.
3. Cross-validation replay: the printed ``inference_instructions.txt`` commands after ``predict`` (``ensemble``,
   ``postprocess``) are run on the *saved cross-validation probabilities* of the selected model(s), and the result
   is evaluated against ``gt_segmentations``; the score must equal the reported post-processing score exactly.
4. Held-out test: every printed command is run on the test images, the output is evaluated against the held-out
   labels, and its mean foreground Dice is compared with the reported cross-validation Dice (goal: within 0.02).

Usage::

    python benchmarks/end_to_end_bench.py [--root .bench_cache/end_to_end] [--configs 3d_fullres 2d]
                                          [--budget short] [--test-every 10]

Prints a table; the exit code is non-zero when a command fails or the replay does not reproduce the score.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HIPPO = REPO.parent / "shared" / "datasets" / "Hippocampus"
DATASET = "Dataset004_Hippocampus"
OURS = [str(REPO / ".venv" / "bin" / "python"), "-m", "autounet"]
LABELS = ["--label", "background=0", "--label", "Anterior=1", "--label", "Posterior=2"]


def autounet(*args: str, workspace: Path) -> float:
    """Run one ``autounet`` command (output streamed), fail loudly, return its wall time."""
    cmd = [*OURS, *args]
    if "--workspace" not in args:
        cmd += ["--workspace", str(workspace)]
    print("$ autounet " + shlex.join(cmd[len(OURS):]), flush=True)
    start = time.perf_counter()
    subprocess.run(cmd, check=True)
    return time.perf_counter() - start


def split(src: Path, test_every: int) -> tuple[int, int]:
    """Symlink the pairs into ``src/{images,labels}`` and ``src/{test_images,test_labels}``."""
    pairs = sorted({p.name for p in (HIPPO / "images").glob("*.nii.gz")} & {p.name for p in (HIPPO / "labels").glob("*.nii.gz")})
    for sub in ("images", "labels", "test_images", "test_labels"):
        shutil.rmtree(src / sub, ignore_errors=True)
        (src / sub).mkdir(parents=True)
    n_test = 0
    for i, name in enumerate(pairs):
        test = i % test_every == test_every // 2
        n_test += test
        case = name.removesuffix(".nii.gz")
        image_name = f"{case}_0000.nii.gz" if test else name  # predict input: <case>_0000<ending>
        (src / ("test_images" if test else "images") / image_name).symlink_to(HIPPO / "images" / name)
        (src / ("test_labels" if test else "labels") / name).symlink_to(HIPPO / "labels" / name)
    return len(pairs) - n_test, n_test


def instructions(workspace: Path) -> list[list[str]]:
    """The ``autounet ...`` commands of ``inference_instructions.txt``, split into arguments."""
    text = (workspace / "results" / DATASET / "inference_instructions.txt").read_text(encoding="utf-8")
    return [shlex.split(line)[1:] for line in text.splitlines() if line.startswith("autounet ")]


def score(folder: Path) -> float:
    """Mean foreground Dice of an ``autounet evaluate`` summary."""
    return float(json.loads((folder / "summary.json").read_text(encoding="utf-8"))["foreground_mean"]["Dice"])


def replay_crossval(workspace: Path, info: dict, commands: list[list[str]], out: Path) -> float:
    """Apply the chosen ensemble/post-processing to the saved CV probabilities; return the evaluated score."""
    shutil.rmtree(out, ignore_errors=True)
    members = info["best_model_or_ensemble"]["selected_model_or_models"]
    replace: dict[str, str] = {}
    for j, member in enumerate(members, start=1):
        model_dir = workspace / "results" / DATASET / f"{member['trainer']}__{member['plans_identifier']}__{member['configuration']}"
        folder = out / f"cv_model_{j}"
        folder.mkdir(parents=True)
        for name in ("plans.json", "dataset.json"):
            shutil.copy(model_dir / name, folder / name)
        for f in model_dir.glob("fold_*/validation/*"):
            if f.name.endswith((".npz", ".meta.json", ".nii.gz")):
                (folder / f.name).symlink_to(f)
        replace[f"OUTPUT_FOLDER_MODEL_{j}"] = str(folder)
    single = len(members) == 1
    replace["OUTPUT_FOLDER"] = replace["OUTPUT_FOLDER_MODEL_1"] if single else str(out / "cv_ensemble")
    replace["OUTPUT_FOLDER_PP"] = str(out / "cv_pp")
    for command in commands:
        if command[0] == "predict":
            continue
        autounet(*[replace.get(a, a) for a in command], workspace=workspace)
    if not any(c[0] == "postprocess" for c in commands):
        replace["OUTPUT_FOLDER_PP"] = replace["OUTPUT_FOLDER"]
    pp = Path(replace["OUTPUT_FOLDER_PP"])
    autounet("evaluate", str(pp), str(workspace / "preprocessed" / DATASET / "gt_segmentations"), "-d", "4",
             "-o", str(pp / "summary.json"), workspace=workspace)
    return score(pp)


def predict_test(workspace: Path, commands: list[list[str]], src: Path, out: Path) -> tuple[float, float]:
    """Run every printed command on the test images; return (test Dice, seconds)."""
    shutil.rmtree(out, ignore_errors=True)
    replace = {"INPUT_FOLDER": str(src / "test_images"), "OUTPUT_FOLDER": str(out / "pred"),
               "OUTPUT_FOLDER_PP": str(out / "pred_pp")}
    replace.update({f"OUTPUT_FOLDER_MODEL_{j}": str(out / f"model_{j}") for j in (1, 2)})
    seconds = sum(autounet(*[replace.get(a, a) for a in command], workspace=workspace) for command in commands)
    final = Path(replace["OUTPUT_FOLDER_PP"]) if any(c[0] == "postprocess" for c in commands) else Path(
        replace["OUTPUT_FOLDER"])
    autounet("evaluate", str(final), str(src / "test_labels"), "-d", "4", "-o", str(final / "summary.json"),
             workspace=workspace)
    return score(final), seconds


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=REPO / ".bench_cache" / "end_to_end")
    parser.add_argument("--configs", nargs="+", default=["3d_fullres", "2d"])
    parser.add_argument("--budget", default="short", choices=("short", "full"))
    parser.add_argument("--test-every", type=int, default=10)
    args = parser.parse_args()
    src, workspace = args.root / "src", args.root / "ws"
    n_train, n_test = split(src, args.test_every)
    if not (workspace / "raw" / DATASET / "dataset.json").is_file():
        autounet("import", "--images", str(src / "images"), "--labels", str(src / "labels"), "--id", "4", "--name",
                 "Hippocampus", "--channel", "MRI", *LABELS, "--link", workspace=workspace)
    run_s = autounet("run", "4", "-c", *args.configs, "--budget", args.budget, "--no-progress", workspace=workspace)
    info = json.loads((workspace / "results" / DATASET / "inference_information.json").read_text(encoding="utf-8"))
    best = info["best_model_or_ensemble"]
    commands = instructions(workspace)
    replayed = replay_crossval(workspace, info, commands, args.root / "replay")
    test_dice, predict_s = predict_test(workspace, commands, src, args.root / "test")
    reported = float(best["result_on_crossval_post_pp"])
    rows = [("cases (train / held out)", f"{n_train} / {n_test}"),
            ("configurations, budget", f"{' '.join(args.configs)}, {args.budget}"),
            ("autounet run wall time", f"{run_s / 60:.1f} min"),
            ("chosen model", best["name"] if "name" in best else info.get("best", "?")),
            ("CV Dice (reported, after post-processing)", f"{reported:.4f}"),
            ("CV Dice replayed from saved probabilities", f"{replayed:.4f} ({'equal' if replayed == reported else 'DIFFERENT'})"),
            ("held-out Dice following the instructions", f"{test_dice:.4f} (diff {test_dice - reported:+.4f})"),
            ("prediction of the held-out images", f"{predict_s:.1f} s ({n_test} cases)")]
    width = max(len(k) for k, _ in rows)
    print("\n| measure" + " " * (width - 7) + " | value |\n|" + "-" * (width + 2) + "|---|")
    for key, value in rows:
        print(f"| {key.ljust(width)} | {value} |")
    return 0 if replayed == reported else 1


if __name__ == "__main__":
    sys.exit(main())
