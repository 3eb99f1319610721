"""CLI conventions (docs/cli-conventions.md): one spelling per concept in every command, global flags before or
after the subcommand, deprecated aliases, the version from the package metadata, shell completion, and the
training flags and docs generated from the one definition of each setting."""

from __future__ import annotations

import argparse
import importlib.metadata
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import autounet
from autounet.cli import _options, _settings, build_parser, main
from autounet.cli.completion import bash_script, zsh_script
from autounet.schemas.training import setting_fields

ROOT = Path(__file__).resolve().parents[2]


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def _all_parsers() -> dict[str, argparse.ArgumentParser]:
    out = {}
    for name, sub in _subparsers(build_parser()).items():
        nested = [a for a in sub._actions if isinstance(a, argparse._SubParsersAction)]
        if nested:
            out.update({f"{name} {k}": v for k, v in nested[0].choices.items()})
        else:
            out[name] = sub
    return out


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = build_parser()
    args = parser.parse_args(argv)
    _options.finish(parser, args)
    return args


# ---- one spelling per concept -------------------------------------------------------------------------------------
def test_shared_concepts_have_one_spelling_everywhere() -> None:
    for name, parser in _all_parsers().items():
        for action in parser._actions:
            visible = action.help != argparse.SUPPRESS
            strings = set(action.option_strings)
            if action.dest == "workers":
                assert strings == {"-j", "--workers"}, name
            if "--json" in strings and visible:
                assert action.nargs == 0, f"{name}: --json is a switch"
            if action.dest == "dataset" and action.option_strings:
                assert strings == {"-d", "--dataset"}, name
            if visible:
                assert not strings & {"--plans-name", "--trainer-name", "--iters", "--threads-loader"}, name
            if "--budget" in strings:
                assert action.default == "full" or name == "demo", name
            if "-c" in strings:
                assert strings in ({"-c", "--configuration"}, {"-c", "--configurations"}), name
            if "-f" in strings:
                assert strings in ({"-f", "--fold"}, {"-f", "--folds"}), name


@pytest.mark.parametrize("argv", [
    ["plan", "4"], ["plan", "-d", "4"], ["plan", "--dataset", "4"],
    ["train", "4", "2d", "0"], ["train", "-d", "4", "-c", "2d", "-f", "0"], ["train", "4", "-c", "2d", "--fold", "0"],
])
def test_positional_shorthand_and_options_are_the_same(argv: list[str]) -> None:
    args = _parse(argv)
    assert args.dataset == "4"
    if argv[0] == "train":
        assert (args.configuration, args.fold) == ("2d", "0")


def test_missing_or_conflicting_dataset_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        _parse(["train", "-c", "2d", "-f", "0"])
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "autounet train: error: dataset is required (-d/--dataset)" in err
    assert err.startswith("usage: autounet train")
    with pytest.raises(SystemExit):
        _parse(["plan", "4", "-d", "5"])
    assert "dataset given twice" in capsys.readouterr().err


# ---- global flags -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv", [
    ["--workspace", "W", "--quiet", "--no-progress", "--debug", "verify", "4"],
    ["verify", "4", "--workspace", "W", "--quiet", "--no-progress", "--debug"],
    ["--workspace", "W", "verify", "--quiet", "4", "--no-progress", "--debug"],
    ["--workspace", "W", "--quiet", "--no-progress", "--debug", "plans", "export", "4", "-o", "x.json"],
    ["plans", "export", "4", "-o", "x.json", "--workspace", "W", "--quiet", "--no-progress", "--debug"],
])
def test_global_flags_before_or_after_the_subcommand(argv: list[str]) -> None:
    args = _parse(argv)
    assert (args.workspace, args.quiet, args.progress, args.debug) == ("W", True, False, True)


def test_global_flag_defaults() -> None:
    args = _parse(["verify", "4"])
    assert (args.workspace, args.quiet, args.progress, args.debug) == (None, False, True, False)


# ---- deprecated spellings ------------------------------------------------------------------------------------------
@pytest.mark.parametrize(("argv", "dest", "value", "warning"), [
    (["train", "4", "2d", "0", "--trainer-name", "T"], "setting__trainer_name", "T", "--trainer-name"),
    (["train", "4", "2d", "0", "--budget", "reference"], "budget", "full", "--budget reference"),
    (["plan", "4", "--plans-name", "P"], "plans_name", "P", "--plans-name"),
    (["preprocess", "4", "--plans-name", "P"], "plans", "P", "--plans-name"),
    (["verify", "4", "--json", "r.json"], "output", "r.json", "--json"),
    (["demo", "--dataset", "folder"], "source", "folder", "--dataset"),
])
def test_old_spellings_still_work_with_a_warning(argv: list[str], dest: str, value: str, warning: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    assert getattr(_parse(argv), dest) == value
    assert f"warning: {warning} is deprecated" in capsys.readouterr().err


def test_unknown_budget_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _parse(["run", "4", "--budget", "long"])
    assert "choose from full, short" in capsys.readouterr().err


# ---- training flags from the one definition ------------------------------------------------------------------------
def test_every_setting_with_a_flag_is_a_flag_of_train_and_run() -> None:
    parsers = _all_parsers()
    for _group, f in setting_fields():
        flag = f.metadata["flag"]
        if not flag:
            continue
        assert flag in parsers["train"]._option_string_actions, flag
        assert (flag in parsers["run"]._option_string_actions) == (f.name != "device"), flag


def test_training_flags_become_settings() -> None:
    args = _parse(["train", "4", "2d", "0", "--epochs", "3", "--lr", "0.02", "--no-compile", "--deterministic",
                   "--loader-threads", "1", "--optimizer", "adamw", "--optimizer-param", "weight_decay=0.1",
                   "--optimizer-param", "betas=[0.8,0.9]", "--no-deep-supervision", "--device", "cuda:1"])
    assert _settings.training_settings(args) == {
        "epochs": 3, "initial_lr": 0.02, "compile": False, "deterministic": True, "loader_threads": 1,
        "optimizer": "adamw", "optimizer_params": {"weight_decay": 0.1, "betas": [0.8, 0.9]},
        "deep_supervision": False, "device": "cuda:1"}
    assert _settings.training_settings(_parse(["run", "4"])) == {}


def test_bad_key_value_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _parse(["train", "4", "2d", "0", "--loss-param", "weight_ce"])
    assert "expected KEY=VALUE" in capsys.readouterr().err


def test_training_docs_are_current() -> None:
    proc = subprocess.run([sys.executable, str(ROOT / "docs" / "generate.py"), "--check"], capture_output=True,
                          text=True, encoding="utf-8", check=False)
    assert proc.returncode == 0, proc.stderr


# ---- version and completion ---------------------------------------------------------------------------------------
def test_version_comes_from_the_package_metadata(capsys: pytest.CaptureFixture[str]) -> None:
    expected = importlib.metadata.version("autounet")
    assert autounet.__version__ == expected
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0 and capsys.readouterr().out.strip() == f"autounet {expected}"


def test_completion_command_prints_the_script(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["completion", "bash"]) == 0
    assert capsys.readouterr().out == bash_script(build_parser())
    assert main(["completion", "zsh"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("#compdef autounet") and "bashcompinit" in out and out == zsh_script(build_parser())


def _complete(script: Path, *words: str) -> list[str]:
    cmd = (f"source {script}; COMP_WORDS=({' '.join(repr(w) for w in words)}); COMP_CWORD={len(words) - 1}; "
           '_autounet_complete; printf "%s\\n" "${COMPREPLY[@]}"')
    out = subprocess.run(["bash", "-c", cmd], capture_output=True, text=True, encoding="utf-8", check=True)
    return [w for w in out.stdout.splitlines() if w]


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_completion_completes_commands_flags_and_choices(tmp_path: Path) -> None:
    script = tmp_path / "autounet.bash"
    script.write_text(bash_script(build_parser()), encoding="utf-8")
    subprocess.run(["bash", "-n", str(script)], check=True)
    assert _complete(script, "autounet", "tr") == ["train"]
    assert _complete(script, "autounet", "--workspace", "ws", "train", "--bud") == ["--budget"]
    assert _complete(script, "autounet", "train", "--budget", "") == ["full", "short"]
    assert _complete(script, "autounet", "plans", "") == ["export", "import"]
    assert "--optimizer-param" in _complete(script, "autounet", "run", "--optim")
    assert "--trainer-name" not in _complete(script, "autounet", "train", "--trainer")
