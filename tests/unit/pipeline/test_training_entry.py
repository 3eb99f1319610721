"""The one training entry point, reached from every caller: ``autounet train`` (CLI), ``autounet.train`` (API),
``autounet run`` in process (one device) and in spawned processes (two devices), and through a custom submit."""

from __future__ import annotations

import json
from concurrent.futures import Future
from pathlib import Path

import pytest

import autounet
from autounet import pipeline
from autounet.cli import main
from autounet.errors import AutounetError, ConfigError, UsageError
from autounet.pipeline.training import (
    FoldResult,
    ProcessSubmitter,
    TrainingJob,
    run_training,
)
from autounet.schemas.training import (
    RuntimeSettings,
    load_training_config,
    training_config,
)
from autounet.testing import make_synthetic_dataset
from autounet.workspace import Workspace

NAME = "Dataset990_Tiny"
TINY = {"epochs": 1, "iterations_per_epoch": 1, "val_iterations": 1, "batch_size": 2, "loader_threads": 0,
        "device": "cpu"}
TINY_FLAGS = ["--epochs", "1", "--iters-per-epoch", "1", "--val-iters", "1", "--batch-size", "2",
              "--loader-threads", "0", "--device", "cpu"]


@pytest.fixture(scope="module")
def planned(tmp_path_factory: pytest.TempPathFactory) -> Workspace:
    """A tiny synthetic dataset, planned (2d) and preprocessed."""
    ws = Workspace.at(tmp_path_factory.mktemp("entry") / "ws").ensure()
    make_synthetic_dataset(ws.raw / NAME, n_cases=6, shape=(4, 24, 24), spacing=(2.0, 1.0, 1.0), seed=5)
    autounet.plan(990, configurations=["2d"], preprocess=True, workers=1, workspace=ws)
    return ws


def _fold_dir(ws: Workspace, fold: int, trainer: str = "nnUNetTrainer") -> Path:
    return ws.model_dir(NAME, "2d", trainer=trainer) / f"fold_{fold}"


def test_cli_train_trains_and_validates(planned: Workspace, capsys: pytest.CaptureFixture[str]) -> None:
    # global flags after the subcommand, -d/-c/-f, the generated training flags, a deprecated alias
    code = main(["train", "-d", "990", "-c", "2d", "-f", "0", "--workspace", str(planned.raw.parent), "--quiet",
                 *TINY_FLAGS, "--trainer-name", "CliTrainer", "--seed", "1", "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "--trainer-name is deprecated; use --trainer" in captured.err
    out = json.loads(captured.out)
    fold = _fold_dir(planned, 0, "CliTrainer")
    assert out["fold_dir"] == str(fold) and out["last_epoch"]["epoch"] == 0
    assert 0.0 <= out["validation_dice"] <= 1.0
    assert (fold / "checkpoint_final.pth").is_file() and (fold / "validation" / "summary.json").is_file()
    config = load_training_config(fold / "training_config.json")
    assert (config.recipe.trainer_name, config.recipe.optimizer, config.runtime.seed) == ("CliTrainer", "sgd", 1)


def test_cli_train_off_a_terminal_logs_lines_instead_of_bars(planned: Workspace,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    # output to a file or pipe (pytest's capture is not a terminal): no progress bars, the epoch line is logged
    code = main(["train", "990", "2d", "0", "--workspace", str(planned.raw.parent), *TINY_FLAGS,
                 "--trainer", "LogTrainer", "--no-val"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert "it/s" not in captured.err and "\r" not in captured.err
    assert "epoch 0/0: train_loss" in captured.err
    config = load_training_config(_fold_dir(planned, 0, "LogTrainer") / "training_config.json")
    assert config.runtime.progress is False


def test_api_train_uses_the_same_entry_point(planned: Workspace) -> None:
    result = autounet.train(990, "2d", 1, budget="short", workspace=planned, optimizer="adamw", initial_lr=1e-3,
                            optimizer_params={"weight_decay": 0.05}, **TINY)
    assert isinstance(result, FoldResult) and result.trained and result.fold_dir == _fold_dir(planned, 1)
    assert result.validation_dice is not None
    assert (result.fold_dir / "validation" / "summary.json").is_file()
    recipe = load_training_config(result.fold_dir / "training_config.json").recipe
    assert (recipe.optimizer, recipe.optimizer_params, recipe.initial_lr) == ("adamw", {"weight_decay": 0.05}, 1e-3)
    with pytest.raises(ConfigError, match="Did you mean 'epochs'"):
        autounet.train(990, "2d", 1, workspace=planned, epoch=3)


def test_run_training_auto_resume_reuses_a_finished_fold(planned: Workspace) -> None:
    recipe = training_config("short", **TINY).recipe
    job = TrainingJob(workspace=planned, dataset=NAME, configuration="2d", fold=1, recipe=recipe, resume="auto",
                      validation=None)
    if not (job.fold_dir / "checkpoint_final.pth").is_file():  # run alone (the API test trains fold 1)
        autounet.train(990, "2d", 1, budget="short", workspace=planned, validate=False, **TINY)
    stamp = (job.fold_dir / "checkpoint_final.pth").stat().st_mtime_ns
    result = run_training(job, runtime=RuntimeSettings(device="cpu", loader_threads=0))
    assert not result.trained and result.validation_dice is None
    assert (job.fold_dir / "checkpoint_final.pth").stat().st_mtime_ns == stamp
    with pytest.raises(UsageError, match="already holds"):
        run_training(TrainingJob(workspace=planned, dataset=NAME, configuration="2d", fold=1, recipe=recipe,
                                 validation=None), runtime=RuntimeSettings(device="cpu"))


def test_pipeline_through_a_custom_submit(planned: Workspace) -> None:
    seen: list[tuple[str, str]] = []

    def submit(job: TrainingJob, runtime: RuntimeSettings) -> Future[FoldResult]:
        seen.append((job.key, runtime.device))
        future: Future[FoldResult] = Future()
        future.set_result(run_training(job, runtime=runtime))
        return future

    options = pipeline.RunOptions(configurations=("2d",), folds=(2,), devices=("cpu",), budget="short", workers=1,
                                  training_overrides=TINY)
    steps: list[tuple[str, str]] = []
    summary = pipeline.run(planned, NAME, options=options, submit=submit,
                           on_step=lambda step, msg: steps.append((step, msg)))
    assert seen == [("2d/fold_2", "cpu")]
    assert summary.trained == ["2d/fold_2"] and not summary.failed
    assert ("train", "2d/fold_2 on cpu") in steps and ("train", "2d/fold_2 done") in steps
    assert (_fold_dir(planned, 2) / "validation" / "summary.json").is_file()


def test_process_submitter_runs_the_job_in_a_child_and_returns_its_error(planned: Workspace) -> None:
    job = TrainingJob(workspace=planned, dataset=NAME, configuration="3d_nope", fold=0, validation=None)
    with ProcessSubmitter(1) as submit:
        future = submit(job, RuntimeSettings(device="cpu"))
        with pytest.raises(AutounetError, match="3d_nope"):
            future.result(timeout=300)


@pytest.mark.slow
def test_pipeline_on_two_devices_runs_one_process_per_device(planned: Workspace) -> None:
    options = pipeline.RunOptions(configurations=("2d",), folds=(3, 4), devices=("cpu", "cpu"),
                                  budget="short", workers=1, training_overrides=TINY)
    summary = pipeline.run(planned, NAME, options=options)
    assert sorted(summary.trained) == ["2d/fold_3", "2d/fold_4"] and not summary.failed
    for fold in (3, 4):
        assert (_fold_dir(planned, fold) / "checkpoint_final.pth").is_file()
        assert (_fold_dir(planned, fold) / "validation" / "summary.json").is_file()


def test_devices_are_checked_before_any_work() -> None:
    assert pipeline.RunOptions(devices=("cuda:1", "cuda:0")).devices == ("cuda:1", "cuda:0")
    with pytest.raises(ConfigError, match="--devices must be auto, cpu, mps, cuda or cuda:N, got 'gpu1'"):
        pipeline.RunOptions(devices=("gpu1",))
    with pytest.raises(ConfigError, match="Unknown training setting 'epoch'"):
        pipeline.RunOptions(training_overrides={"epoch": 1})
    assert pipeline.RunOptions(budget="reference").budget == "full"


def test_unavailable_cuda_index_is_a_usage_error() -> None:
    torch = pytest.importorskip("torch")
    from autounet.training.build import resolve_device

    if torch.cuda.is_available():
        with pytest.raises(UsageError, match="CUDA device"):
            resolve_device(f"cuda:{torch.cuda.device_count()}")
    else:
        with pytest.raises(UsageError, match="--device cuda:1 requested but no CUDA device"):
            resolve_device("cuda:1")
    assert resolve_device("cpu").type == "cpu"
