"""The reference's (nnU-Net v2) flag spellings on our commands: translated before parsing, in one place.

nnU-Net's commands use single-dash long options (``-device``, ``-chk``, ``-step_size``) that argparse would split
into a short option plus a value (``-device cpu`` read as ``-d evice``). :func:`translate` rewrites ``argv``
before parsing: each reference spelling of the subcommand is mapped to ours (values converted where the forms
differ), dropped with a note when it has no effect here, or refused with a message naming ours. Any other
single-dash option longer than one letter is refused, so nothing is ever misread. The same table renders the
command-line page ``docs/nnunet-compat-cli.md`` (``python -m autounet.cli._reference_flags``).
"""

from __future__ import annotations

import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from autounet.errors import UsageError

MAP, SAME, IGNORE, REFUSE, POSITIONAL = "map", "same", "ignore", "refuse", "positional"
_SINGLE_DASH_WORD = re.compile(r"^-[A-Za-z][A-Za-z_]+$")
_CHECKPOINTS = {"checkpoint_final.pth": "final", "checkpoint_best.pth": "best", "checkpoint_latest.pth": "latest"}


@dataclass(frozen=True)
class Flag:
    """One reference option: how it reads on our command.

    ``kind``: ``same`` (identical), ``map`` (to ``ours``, values through ``convert``), ``positional`` (its value
    becomes our positional argument), ``ignore`` (no effect here; dropped with ``note``), ``refuse`` (an error
    with ``note``). ``nargs``: 0 (a switch), 1, or ``"+"`` (values up to the next option).
    """

    spellings: tuple[str, ...]
    kind: str
    ours: str = ""
    nargs: int | str = 1
    note: str = ""
    convert: Callable[[list[str]], list[str]] | None = None


@dataclass(frozen=True)
class Command:
    """Our subcommand and the reference commands it stands for."""

    ours: str
    reference: tuple[str, ...]
    flags: tuple[Flag, ...]
    note: str = ""


def _checkpoint(values: list[str]) -> list[str]:
    out = []
    for v in values:
        if v not in _CHECKPOINTS and v not in _CHECKPOINTS.values():
            raise UsageError(f"-chk {v}: autounet reads checkpoint_final.pth, checkpoint_best.pth or "
                             "checkpoint_latest.pth (--checkpoint final|best|latest).")
        out.append(_CHECKPOINTS.get(v, v))
    return out


def _trainer(values: list[str]) -> list[str]:
    """``-tr nnUNetTrainer`` is the default; ``nnUNetTrainer_<N>epochs`` is ``--epochs N``; others are refused."""
    name = values[0]
    if name == "nnUNetTrainer":
        return []
    m = re.fullmatch(r"nnUNetTrainer_(\d+)epochs", name)
    if m:
        return ["--epochs", m.group(1), "--trainer", name]
    raise UsageError(f"-tr {name}: autounet has no trainer classes; the recipe is set by flags (--epochs, --lr, "
                     "--iters-per-epoch, --augmentation, --batch-size) and --trainer names the model folder.")


def _planner(values: list[str]) -> list[str]:
    from autounet.planning.presets import preset_for_reference_class

    preset = preset_for_reference_class(values[0])
    if preset is None:
        raise UsageError(f"-pl {values[0]}: no autounet preset for this planner class; use --preset "
                         "default|resenc-m|resenc-l|resenc-xl.")
    return [preset.name]


def _only(default: str, ours: str) -> Callable[[list[str]], list[str]]:
    def check(values: list[str]) -> list[str]:
        if values != [default]:
            raise UsageError(f"{values[0]}: only {default} exists in autounet ({ours}).")
        return []
    return check


def _first(values: list[str]) -> list[str]:
    return [str(max(int(v) for v in values))]


_NP_J = Flag(("-np",), MAP, "-j", note="worker processes")
_VERBOSE = Flag(("--verbose",), IGNORE, nargs=0, note="autounet logs progress by default (--quiet for less)")
_NO_PBAR = Flag(("--no_pbar",), MAP, "--no-progress", nargs=0)
_D_POS = Flag(("-d",), POSITIONAL, "DATASET", note="one dataset per call")

COMMANDS: tuple[Command, ...] = (
    Command("predict", ("nnUNetv2_predict", "nnUNetv2_predict_from_modelfolder"), (
        Flag(("-i",), SAME, "-i", nargs="+"), Flag(("-o",), SAME, "-o"), Flag(("-d",), SAME, "-d"),
        Flag(("-c",), SAME, "-c"), Flag(("-f",), SAME, "-f", nargs="+"), Flag(("-m",), SAME, "-m"),
        Flag(("-p",), MAP, "--plans"), Flag(("-tr",), MAP, "--trainer"),
        Flag(("-step_size",), MAP, "--step"), Flag(("--disable_tta",), MAP, "--no-tta", nargs=0),
        Flag(("--save_probabilities",), MAP, "--save-probabilities", nargs=0),
        Flag(("--continue_prediction", "--c"), IGNORE, nargs=0,
             note="existing outputs are always skipped (--overwrite redoes them)"),
        Flag(("-chk",), MAP, "--checkpoint", convert=_checkpoint),
        Flag(("-npp",), IGNORE, note="reading/preprocessing overlap the network in threads (--threads sets torch's)"),
        Flag(("-nps",), IGNORE, note="export overlaps the network in threads"),
        Flag(("-prev_stage_predictions",), MAP, "--prev-stage"),
        Flag(("-num_parts",), MAP, "--parts"), Flag(("-part_id",), MAP, "--part"),
        Flag(("-device",), MAP, "--device"),
        Flag(("--disable_progress_bar",), MAP, "--no-progress", nargs=0),
        Flag(("--not_on_device",), IGNORE, nargs=0, note="logits stay on the device only while it has room"),
        _VERBOSE)),
    Command("train", ("nnUNetv2_train",), (
        Flag(("-tr",), MAP, "", convert=_trainer,
             note="nnUNetTrainer is the default; nnUNetTrainer_<N>epochs is `--epochs N --trainer "
                  "nnUNetTrainer_<N>epochs`; other trainer classes are refused (the recipe is set by flags)"),
        Flag(("-p",), MAP, "--plans"), Flag(("-pretrained_weights",), MAP, "--pretrained"),
        Flag(("-num_gpus",), MAP, "", convert=_only("1", "several GPUs: torchrun --nproc-per-node N -m autounet "
                                                           "train ...")),
        Flag(("--npz",), MAP, "--save-probabilities", nargs=0), Flag(("--c",), MAP, "--resume", nargs=0),
        Flag(("--val",), MAP, "--val-only", nargs=0),
        Flag(("--val_best",), MAP, "--val-checkpoint best", nargs=0),
        Flag(("--disable_checkpointing",), REFUSE, nargs=0,
             note="autounet always writes checkpoints (--checkpoint-every N sets how often)"),
        Flag(("-device",), MAP, "--device")),
        note="positional DATASET CONFIG FOLD as in the reference"),
    Command("plan", ("nnUNetv2_plan_experiment", "nnUNetv2_plan_and_preprocess"), (
        _D_POS, Flag(("-c",), SAME, "-c", nargs="+"),
        Flag(("-pl",), MAP, "--preset", convert=_planner),
        Flag(("-gpu_memory_target",), MAP, "--gpu-memory"),
        Flag(("-preprocessor_name",), MAP, "", convert=_only("DefaultPreprocessor", "its default preprocessor")),
        Flag(("-overwrite_target_spacing",), MAP, "--target-spacing", nargs="+"),
        Flag(("-overwrite_plans_name",), MAP, "--plans"),
        Flag(("-fpe",), MAP, "", convert=_only("DatasetFingerprintExtractor", "its fingerprint extractor")),
        Flag(("-npfp",), MAP, "-j"),
        Flag(("-np",), IGNORE, nargs="+", note="preprocessing workers: autounet preprocess -j N"),
        Flag(("--verify_dataset_integrity",), IGNORE, nargs=0, note="run autounet verify DATASET"),
        Flag(("--no_pp",), IGNORE, nargs=0, note="plan does not preprocess unless --preprocess"),
        Flag(("--clean",), SAME, "--clean", nargs=0), _VERBOSE, _NO_PBAR),
        note="nnUNetv2_plan_and_preprocess = autounet plan --preprocess"),
    Command("preprocess", ("nnUNetv2_preprocess",), (
        _D_POS, Flag(("-plans_name",), MAP, "--plans"), Flag(("-c",), SAME, "-c", nargs="+"),
        Flag(("-np",), MAP, "-j", nargs="+", convert=_first, note="one value for all configurations (the largest)"),
        _VERBOSE, _NO_PBAR)),
    Command("fingerprint", ("nnUNetv2_extract_fingerprint",), (
        _D_POS, Flag(("-fpe",), MAP, "", convert=_only("DatasetFingerprintExtractor", "its fingerprint extractor")),
        _NP_J, Flag(("--verify_dataset_integrity",), IGNORE, nargs=0, note="run autounet verify DATASET"),
        Flag(("--clean",), SAME, "--clean", nargs=0), _VERBOSE, _NO_PBAR)),
    Command("find-best", ("nnUNetv2_find_best_configuration", "nnUNetv2_accumulate_crossval_results"), (
        Flag(("-p",), MAP, "--plans", nargs="+"), Flag(("-c",), SAME, "-c", nargs="+"),
        Flag(("-tr",), MAP, "--trainer", nargs="+"), _NP_J, Flag(("-f",), SAME, "-f", nargs="+"),
        Flag(("--disable_ensembling",), MAP, "--no-ensembling", nargs=0),
        Flag(("--no_overwrite",), IGNORE, nargs=0, note="up-to-date results are reused"))),
    Command("ensemble", ("nnUNetv2_ensemble",), (
        Flag(("-i",), SAME, "-i", nargs="+"), Flag(("-o",), SAME, "-o"), _NP_J,
        Flag(("--save_npz",), MAP, "--save-probabilities", nargs=0))),
    Command("postprocess", ("nnUNetv2_determine_postprocessing", "nnUNetv2_apply_postprocessing"), (
        Flag(("-i",), SAME, "-i"), Flag(("-o",), SAME, "-o"), Flag(("-ref",), MAP, "--determine"),
        Flag(("-pp_pkl_file",), REFUSE, note="pickles are never loaded: --decision postprocessing.json"),
        Flag(("-plans_json",), IGNORE, note="not needed"),
        Flag(("-dataset_json",), REFUSE, note="use -d DATASET (or -l LABELS)"), _NP_J,
        Flag(("--remove_postprocessed",), IGNORE, nargs=0, note="the postprocessed folder is kept"))),
    Command("evaluate", ("nnUNetv2_evaluate_folder", "nnUNetv2_evaluate_simple"), (
        Flag(("-djfile",), REFUSE, note="use -d DATASET (or -l LABELS)"),
        Flag(("-pfile",), IGNORE, note="not needed"), Flag(("-l",), SAME, "-l", nargs="+"),
        Flag(("-il",), MAP, "--ignore-label"), Flag(("-o",), SAME, "-o"), _NP_J,
        Flag(("--chill",), IGNORE, nargs=0, note="missing predictions are allowed unless --strict")),
        note="positional order differs: autounet evaluate PRED REF (the reference: GT PRED)"),
    Command("export-model", ("nnUNetv2_export_model_to_zip",), (
        Flag(("-d",), SAME, "-d"), Flag(("-o",), SAME, "-o"), Flag(("-c",), SAME, "-c", nargs="+"),
        Flag(("-tr",), MAP, "--trainer"), Flag(("-p",), MAP, "--plans"), Flag(("-f",), SAME, "-f", nargs="+"),
        Flag(("-chk",), MAP, "--checkpoints", nargs="+", convert=_checkpoint),
        Flag(("--not_strict",), IGNORE, nargs=0, note="only trained configurations are packed by default"),
        Flag(("--exp_cv_preds",), REFUSE, nargs=0, note="packages hold summaries, not predictions"))),
    Command("install-model", ("nnUNetv2_install_pretrained_model_from_zip",), ()),
    Command("convert-msd", ("nnUNetv2_convert_MSD_dataset",), (
        Flag(("-i",), POSITIONAL, "TASK_DIR"), Flag(("-overwrite_id",), MAP, "--id"), _NP_J)),
)

#: reference commands without an autounet equivalent, and why
UNSUPPORTED = {
    "nnUNetv2_download_pretrained_model_by_url": "autounet never downloads; fetch the zip, then install-model",
    "nnUNetv2_move_plans_between_datasets": "autounet plans import/export converts plans files",
    "nnUNetv2_plot_overlay_pngs": "autounet report draws overlays of the best and worst cases",
    "nnUNetv2_convert_old_nnUNet_dataset": "no nnU-Net v1 conversion",
}

_BY_COMMAND = {c.ours: c for c in COMMANDS}


def _table(command: Command) -> dict[str, Flag]:
    return {s: f for f in command.flags for s in f.spellings}


def _is_value(token: str) -> bool:
    return not token.startswith("-") or re.fullmatch(r"-\d+(\.\d*)?", token) is not None


def translate(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """``argv`` (without the program name) with reference spellings rewritten; also the notes to show.

    Raises ``UsageError`` for a refused option or an unknown single-dash word option.
    """
    args = list(argv)
    index = next((i for i, a in enumerate(args) if not a.startswith("-")), None)
    if index is None:
        return args, []
    name = args[index]
    command = _BY_COMMAND.get(name)
    table = _table(command) if command else {}
    out, notes = args[:index + 1], []
    i = index + 1
    while i < len(args):
        token = args[i]
        if token == "--":
            out.extend(args[i:])
            break
        spelling, eq, attached = token.partition("=") if token.startswith("--") else (token, "", "")
        flag = table.get(spelling)
        if flag is None or flag.kind == SAME:
            if flag is None and _SINGLE_DASH_WORD.match(token):
                raise UsageError(f"autounet {name}: unknown option {token} (autounet's long options start with "
                                 f"'--'; see autounet {name} --help and docs/nnunet-compat-cli.md).")
            out.append(token)
            i += 1
            continue
        values, i = _values(args, i + 1, flag, attached if eq else None, name, spelling)
        if flag.kind == REFUSE:
            raise UsageError(f"autounet {name}: {spelling} is not supported: {flag.note}.")
        if flag.kind == IGNORE:
            notes.append(f"{spelling} has no effect in autounet {name}: {flag.note}.")
            continue
        if flag.convert is not None:  # converted values (possibly none), after our flag when there is one
            values = flag.convert(values)
            out.extend([*flag.ours.split(), *values] if flag.ours and values else values)
        elif flag.kind == POSITIONAL:
            if len(values) != 1:
                raise UsageError(f"autounet {name}: {spelling} takes one value here ({flag.note or flag.ours}).")
            out.append(values[0])
        else:
            out.extend([*flag.ours.split(), *values])
    return out, notes


def _values(args: list[str], start: int, flag: Flag, attached: str | None, command: str,
            spelling: str) -> tuple[list[str], int]:
    if flag.nargs == 0:
        return [], start
    if attached is not None:
        return [attached], start
    end = start
    while end < len(args) and _is_value(args[end]) and (flag.nargs == "+" or end - start < int(flag.nargs)):
        end += 1
    if end == start:
        raise UsageError(f"autounet {command}: {spelling} needs a value.")
    return args[start:end], end


# ---- the documentation table -----------------------------------------------------------------------------------
def _describe(flag: Flag) -> str:
    if flag.kind == SAME:
        return f"`{flag.ours}` (same)"
    if flag.kind == POSITIONAL:
        return f"positional `{flag.ours}`" + (f" ({flag.note})" if flag.note else "")
    if flag.kind == IGNORE:
        return f"accepted, no effect: {flag.note}"
    if flag.kind == REFUSE:
        return f"refused: {flag.note}"
    target = f"`{flag.ours}`" if flag.ours else "accepted"
    detail = {"_checkpoint": "checkpoint_final.pth → final, checkpoint_best.pth → best",
              "_planner": "planner class → preset (nnUNetPlannerResEncL → resenc-l)",
              "_first": "the largest value"}.get(getattr(flag.convert, "__name__", ""), "")
    return target + (f" ({detail})" if detail else "") + (f"; {flag.note}" if flag.note else "")


def render_markdown() -> str:
    """``docs/nnunet-compat-cli.md``: every reference command and flag against autounet's."""
    lines = [
        "# nnU-Net v2 command lines in autounet",
        "",
        "<!-- generated by `python -m autounet.cli._reference_flags`; tests/unit/test_reference_flags.py checks it"
        " is current -->",
        "",
        "autounet accepts the reference's (nnU-Net v2.8.1) flag spellings on the commands that have an equivalent:",
        "`autounet predict -i in -o out -d 4 -c 3d_fullres -f 0 -device cpu -chk checkpoint_best.pth --disable_tta`",
        "runs as `autounet predict ... --device cpu --checkpoint best --no-tta`. Each reference flag is mapped to",
        "ours, accepted without effect (a note is printed), or refused with a message naming what to use instead.",
        "Any other single-dash option longer than one letter is an error, so `-device` is never read as",
        "`-d evice`. The `nnUNet_raw` / `nnUNet_preprocessed` / `nnUNet_results` variables locate the workspace",
        "as in the reference; model folders and zips are interchangeable both ways (see models.md).",
        "",
        "| reference command | autounet command | notes |",
        "|---|---|---|",
    ]
    for c in COMMANDS:
        for ref in c.reference:
            lines.append(f"| `{ref}` | `autounet {c.ours}` | {c.note} |")
    for ref, why in UNSUPPORTED.items():
        lines.append(f"| `{ref}` | none | {why} |")
    for c in COMMANDS:
        if not c.flags:
            continue
        lines += ["", f"## autounet {c.ours} ({', '.join(f'`{r}`' for r in c.reference)})", "",
                  "| reference flag | autounet |", "|---|---|"]
        for f in c.flags:
            lines.append(f"| {', '.join(f'`{s}`' for s in f.spellings)} | {_describe(f)} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render_markdown())
