"""The segmentation trainable's options through the CLI, on real workers: every loss and
weighted sums of them, every augmentation set, and a pretrained encoder read from local disk
whose inputs are normalised with its own statistics."""

from __future__ import annotations

import json
import math
from importlib.util import find_spec
from pathlib import Path

import pytest
import yaml

from smptune.queue.store import SweepStore

from conftest import run_cli, wait_for
from local_weights import write_local_weights

LOSSES = ["dice", "jaccard", "lovasz", "tversky", "focal", "ce", "0.7*dice+0.3*focal"]


def _segmentation_config(path: Path, classes: int = 1, **hyperparameters: object) -> Path:
    path.write_text(
        yaml.safe_dump(
            {
                "name": path.stem,
                "n_trials": "grid",
                "data": {
                    "synthetic": {"n_images": 12, "size": 32, "seed": 4, "classes": classes},
                    "test_fraction": 0.25,
                },
                "cv": {"n_folds": 2},
                "training": {"max_epochs": 1, "early_stopping_patience": 0},
                "hyperparameters": {"batch_size": 4, **hyperparameters},
            }
        )
    )
    return path


def _submit(config: Path, url: str, artifacts: Path, **env: str) -> str:
    result = run_cli("producer", "submit", config, "--broker", url, "--artifacts", artifacts, **env)
    assert result.returncode == 0, result.stderr
    return result.stdout.split()[0]


def _wait_done(store: SweepStore, sweep_id: str) -> None:
    wait_for(lambda: store.get_sweep(sweep_id).status.terminal, 600, 0.5)
    sweep = store.get_sweep(sweep_id)
    assert sweep.status == "done", sweep.error


def test_every_loss_trains_binary_and_multiclass_sweeps(
    tmp_path, redis_server, store: SweepStore, start_workers
):
    # Given a grid over every loss, for binary and for 3-class data (all augmentations on)
    start_workers("--cpu", "2")
    sweeps = [
        _submit(
            _segmentation_config(tmp_path / f"losses-{classes}.yaml", classes, loss=LOSSES),
            redis_server.url,
            tmp_path / "out",
        )
        for classes in (1, 3)
    ]
    for sweep_id in sweeps:
        _wait_done(store, sweep_id)
        # Then every loss trained each fold to a finite score, as results.json records it
        results = json.loads((tmp_path / "out" / sweep_id / "results.json").read_text())
        trials = results["ranking"]
        assert sorted(t["params"]["loss"] for t in trials) == sorted(LOSSES)
        for trial in trials:
            assert trial["status"] == "complete", (trial["params"]["loss"], trial["error"])
            assert len(trial["folds"]) == 2 and math.isfinite(trial["score"])
            for fold in trial["folds"].values():
                assert math.isfinite(fold["metrics"]["loss"])


def test_every_augmentation_set_trains_a_sweep(
    tmp_path, redis_server, store: SweepStore, start_workers
):
    # Given a grid over the augmentation sets, alone and together
    start_workers("--cpu", "2")
    sets = [True, False, "scale+rotate", "intensity+noise", "all"]
    config = _segmentation_config(tmp_path / "augment.yaml", augment=sets)
    sweep_id = _submit(config, redis_server.url, tmp_path / "out")
    _wait_done(store, sweep_id)
    # Then each trained, and the best configuration names its set as the user wrote it
    trials = store.trials(sweep_id)
    assert sorted(str(t.params["augment"]) for t in trials) == sorted(map(str, sets))
    assert all(t.status == "complete" and math.isfinite(t.score) for t in trials)
    best = yaml.safe_load((tmp_path / "out" / sweep_id / "best_config.yaml").read_text())
    assert best["hyperparameters"]["augment"]["value"] in sets


def test_a_pretrained_encoder_from_local_weights_gets_its_own_normalisation(
    tmp_path, redis_server, store: SweepStore, start_workers
):
    # Given ImageNet weights for mobilenet_v2 on local disk only (a Hugging Face cache, offline)
    mean, std = [0.1, 0.2, 0.3], [0.5, 0.25, 0.125]
    cache = write_local_weights(tmp_path / "hf", mean, std)
    offline = {"HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}
    start_workers("--cpu", "1", **offline)
    config = _segmentation_config(
        tmp_path / "pretrained.yaml",
        model_encoder="mobilenet_v2",
        model_encoder_weights="imagenet",
    )
    # When a sweep trains it
    sweep_id = _submit(config, redis_server.url, tmp_path / "out", **offline)
    _wait_done(store, sweep_id)
    # Then the final model records the statistics its inputs were normalised with, read
    # from those weights' files, beside how raw pixels became [0, 1]
    info = json.loads(
        (tmp_path / "out" / sweep_id / "final" / "model" / "smptune.json").read_text()
    )
    assert info["encoder_normalisation"] == {"mean": mean, "std": std}
    assert "(x - mean) / std" in info["input"]
    assert info["hyperparameters"]["model_encoder_weights"] == "imagenet"


def test_results_set_the_cv_after_the_final_models_epochs_beside_its_test_score(
    tmp_path, redis_server, store: SweepStore, start_workers
):
    # Given a finished sweep of noisy learning curves whose final model trains the median of
    # the best trial's best epochs
    start_workers("--cpu", "1")
    config = tmp_path / "curves.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "name": "curves",
                "trainable": "smptune.fakes:LearningCurveTrainable",
                "n_trials": 3,
                "metric": "score",
                "retrain_epochs": "median",
                "cv": {"n_folds": 3},
                "training": {"max_epochs": 6},
                "hyperparameters": {"x": {"low": 0.5, "high": 0.9}, "noise": 0.05},
            }
        )
    )
    sweep_id = _submit(config, redis_server.url, tmp_path / "out")
    _wait_done(store, sweep_id)

    # When its results are read
    out = tmp_path / "copy"
    shown = run_cli("producer", "results", sweep_id, "--broker", redis_server.url, "--out", out)

    # Then the best trial's CV at its best epochs, its CV after the final model's epoch count
    # (each fold read at that epoch) and the test score stand side by side
    assert shown.returncode == 0, shown.stderr
    best = json.loads((out / "results.json").read_text())["best"]
    epochs = sorted(f["best_epoch"] for f in _best_folds(store, sweep_id, best["trial"]))[1]
    assert best["epochs"] == epochs == best["cv_at_epochs"]["epochs"]
    curves = store.trials(sweep_id, [best["trial"]])[0].curves
    expected = sum(curve[epochs - 1] for curve in curves.values()) / len(curves)
    assert best["cv_at_epochs"]["score"] == pytest.approx(expected)
    line = next(line for line in shown.stdout.splitlines() if line.startswith("score: CV "))
    assert f"CV after {epochs} epochs {expected:.4f}" in line and ", test " in line
    report = (out / "report.html").read_text()
    assert f"CV at {epochs} epochs" in report and "as the final model trains" in report


def _best_folds(store: SweepStore, sweep_id: str, trial: int) -> list[dict]:
    return list(store.trials(sweep_id, [trial])[0].folds.values())


def test_runs_log_to_tensorboard_and_csv_with_their_hyperparameters(
    tmp_path, redis_server, store: SweepStore, start_workers
):
    # Given a one-configuration sweep logged to CSV and TensorBoard, with SWA over 2 epochs
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    start_workers("--cpu", "1")
    path = _segmentation_config(tmp_path / "logged.yaml", learning_rate=0.003)
    config = yaml.safe_load(path.read_text())
    config["training"].update(
        {"max_epochs": 2, "loggers": ["csv", "tensorboard"], "weight_averaging": "swa"}
    )
    path.write_text(yaml.safe_dump(config))
    sweep_id = _submit(path, redis_server.url, tmp_path / "out")
    _wait_done(store, sweep_id)

    # Then each run of the trial has TensorBoard events under trials/0/tensorboard/<run>,
    # with a validation score per epoch, and the final model's retrain one too
    sweep_dir = tmp_path / "out" / sweep_id
    runs = sorted(p.name for p in (sweep_dir / "trials/0/tensorboard").iterdir())
    assert runs == ["fold_0_seed_0", "fold_1_seed_0"]
    events = EventAccumulator(str(sweep_dir / "trials/0/tensorboard/fold_1_seed_0"))
    events.Reload()
    assert len(events.Scalars("val_iou")) == 2
    # with its hyperparameters beside its best epoch's metrics (TensorBoard's HPARAMS tab)
    assert events.PluginTagToContent("hparams")
    best = events.Scalars("best/iou")
    assert len(best) == 1 and best[0].value == pytest.approx(
        max(e.value for e in events.Scalars("val_iou"))
    )
    assert (sweep_dir / "final/tensorboard/retrain").is_dir()
    # and the CSV logger's hparams.yaml says the same
    hparams = yaml.safe_load((sweep_dir / "trials/0/logs/fold_1_seed_0/hparams.yaml").read_text())
    assert hparams["learning_rate"] == 0.003 and hparams["batch_size"] == 4
    assert (hparams["sweep"], hparams["trial"], hparams["fold"]) == (sweep_id, 0, 1)


@pytest.mark.parametrize(
    ("loggers", "says"),
    [
        (["csv", "wandb"], "training.loggers: 'wandb' is not a logger; choose from csv"),
        pytest.param(
            ["mlflow"],
            "training.loggers: mlflow needs the mlflow package",
            marks=pytest.mark.skipif(find_spec("mlflow") is not None, reason="mlflow installed"),
        ),
        (["csv", "csv"], "training.loggers: each logger once"),
    ],
)
def test_a_bad_logger_is_refused_at_submit(tmp_path, loggers, says):
    path = _segmentation_config(tmp_path / "bad.yaml")
    config = yaml.safe_load(path.read_text())
    config["training"]["loggers"] = loggers
    path.write_text(yaml.safe_dump(config))
    result = run_cli("producer", "submit", path, "--dry-run")
    assert result.returncode == 2
    assert says in result.stderr and len(result.stderr.strip().splitlines()) == 1


@pytest.mark.skipif(find_spec("mlflow") is None, reason="mlflow is not installed")
def test_runs_log_to_an_mlflow_file_store_grouped_by_sweep_trial_and_fold(
    tmp_path, redis_server, store: SweepStore, start_workers, monkeypatch
):
    # Given a one-configuration sweep logged to MLflow, with no tracking server configured
    from mlflow.tracking import MlflowClient

    start_workers("--cpu", "1")
    path = _segmentation_config(tmp_path / "mlflow.yaml", learning_rate=0.003)
    config = yaml.safe_load(path.read_text())
    config["training"].update({"max_epochs": 2, "loggers": ["mlflow"]})
    path.write_text(yaml.safe_dump(config))
    sweep_id = _submit(path, redis_server.url, tmp_path / "out")
    _wait_done(store, sweep_id)

    # Then the sweep's file store has an experiment named after the sweep with a run per
    # fold run and one for the final model, each tagged with where it belongs
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # as the workers set it
    client = MlflowClient(tracking_uri=(tmp_path / "out" / sweep_id / "mlruns").as_uri())
    experiment = client.get_experiment_by_name(sweep_id)
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    by_name = {r.info.run_name: r for r in runs}
    assert set(by_name) == {"trial 0 fold_0_seed_0", "trial 0 fold_1_seed_0", "trial 0 retrain"}
    fold = by_name["trial 0 fold_1_seed_0"]
    assert (fold.data.tags["sweep"], fold.data.tags["trial"], fold.data.tags["fold"]) == (
        sweep_id,
        "0",
        "1",
    )
    # with its hyperparameters, its epochs' scores and its best epoch's
    assert float(fold.data.params["learning_rate"]) == 0.003
    history = client.get_metric_history(fold.info.run_id, "val_iou")
    assert len(history) == 2
    assert fold.data.metrics["best/iou"] == pytest.approx(max(m.value for m in history))
