"""nnU-Net's flag spellings on our commands: mapped, ignored with a note, or refused; never misread."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from autounet.cli import _options, _settings, build_parser, main
from autounet.cli._reference_flags import (
    COMMANDS,
    IGNORE,
    MAP,
    POSITIONAL,
    REFUSE,
    SAME,
    render_markdown,
    translate,
)
from autounet.errors import UsageError

DOCS = Path(__file__).resolve().parents[2] / "docs" / "nnunet-compat-cli.md"


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(translate(argv)[0])
    _options.finish(parser, args)  # positional shorthands merged into their options, as main() does
    return args


def test_predict_reference_spellings_parse_to_ours() -> None:
    args = _parse(["predict", "-i", "in", "-o", "out", "-d", "4", "-c", "3d_fullres", "-f", "0", "1", "-device",
                   "cpu", "-chk", "checkpoint_best.pth", "-step_size", "0.75", "--disable_tta",
                   "--save_probabilities", "-tr", "MyTrainer", "-p", "MyPlans", "-num_parts", "2", "-part_id", "1",
                   "-prev_stage_predictions", "prev", "--disable_progress_bar"])
    assert args.device == "cpu" and args.dataset == "4" and args.configuration == "3d_fullres"
    assert args.checkpoint == "best" and args.step == 0.75 and args.tta is False and args.save_probabilities
    assert args.trainer == "MyTrainer" and args.plans == "MyPlans" and args.folds == ["0", "1"]
    assert (args.parts, args.part, args.prev_stage, args.progress) == (2, 1, "prev", False)


def test_device_is_never_read_as_d_evice() -> None:
    args = _parse(["predict", "-i", "x", "-o", "y", "-m", "model", "-device", "cpu"])
    assert args.device == "cpu" and args.dataset is None


def test_ignored_flags_are_dropped_with_a_note() -> None:
    argv, notes = translate(["predict", "-i", "x", "-o", "y", "-npp", "2", "-nps", "3", "--c", "--verbose"])
    assert argv == ["predict", "-i", "x", "-o", "y"]
    assert len(notes) == 4 and any("--overwrite" in n for n in notes)


def test_train_flags() -> None:
    args = _parse(["train", "4", "3d_fullres", "0", "-tr", "nnUNetTrainer_5epochs", "-p", "P", "--c", "--npz",
                   "-device", "cpu", "-num_gpus", "1", "--val_best"])
    settings = _settings.training_settings(args)
    assert (settings["epochs"], settings["trainer_name"], args.plans, args.resume, args.save_probabilities,
            settings["device"]) == (5, "nnUNetTrainer_5epochs", "P", True, True, "cpu")
    assert args.val_checkpoint == "best"
    assert _parse(["train", "4", "2d", "0", "--val"]).val_only


@pytest.mark.parametrize(("argv", "message"), [
    (["train", "4", "2d", "0", "-tr", "nnUNetTrainerDA5"], "--epochs"),
    (["train", "4", "2d", "0", "-num_gpus", "2"], "torchrun"),
    (["train", "4", "2d", "0", "--disable_checkpointing"], "--checkpoint-every"),
    (["predict", "-i", "x", "-o", "y", "-chk", "model.pth"], "--checkpoint"),
    (["postprocess", "-i", "x", "-pp_pkl_file", "p.pkl"], "--decision"),
    (["plan", "-d", "4", "-pl", "MyPlanner"], "--preset"),
    (["predict", "-i", "x", "-o", "y", "-devic", "cpu"], "unknown option -devic"),
])
def test_refused_flags_name_ours(argv: list[str], message: str) -> None:
    with pytest.raises(UsageError, match=message.replace("-", r"\-")):
        translate(argv)


def test_refusal_through_main_is_a_one_line_error(capsys) -> None:
    assert main(["predict", "-i", "x", "-o", "y", "-chk", "model.pth"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--checkpoint" in err[0]


def test_planning_flags() -> None:
    args = _parse(["plan", "-d", "4", "-pl", "nnUNetPlannerResEncL", "-gpu_memory_target", "40",
                   "-overwrite_plans_name", "Big", "-overwrite_target_spacing", "1", "1", "1", "-c", "3d_fullres",
                   "-npfp", "3"])
    assert (args.dataset, args.preset, args.gpu_memory, args.plans_name, args.workers) == \
        ("4", "resenc-l", 40.0, "Big", 3)
    assert [float(v) for v in args.target_spacing] == [1.0, 1.0, 1.0]
    args = _parse(["preprocess", "-d", "4", "-plans_name", "P", "-c", "2d", "3d_fullres", "-np", "4", "8"])
    assert (args.dataset, args.plans, args.workers, args.configurations) == ("4", "P", 8, ["2d", "3d_fullres"])


def test_every_mapped_flag_exists_in_our_parser() -> None:
    """If one of our flags is renamed, the mapping must follow (this test fails otherwise)."""
    sub = next(a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    for command in COMMANDS:
        ours = {s for a in sub.choices[command.ours]._actions for s in a.option_strings}
        for flag in command.flags:
            assert flag.kind in (MAP, SAME, IGNORE, REFUSE, POSITIONAL)
            if flag.kind in (MAP, SAME) and flag.ours:
                assert flag.ours.split()[0] in ours, (command.ours, flag.spellings, flag.ours)


def test_docs_table_is_current() -> None:
    assert DOCS.read_text(encoding="utf-8") == render_markdown(), \
        "regenerate: PYTHONPATH=src python -m autounet.cli._reference_flags > docs/nnunet-compat-cli.md"
