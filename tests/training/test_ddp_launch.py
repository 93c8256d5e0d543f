"""A fold as two DDP processes (gloo on CPU) started by the calling process: its epochs
reported and its result returned through rank 0, a rank's error failing the run, a killed
rank losing it at once, and a worker without the devices refused."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from smptune.errors import ConfigError, TrialError
from smptune.search.scoring import Scoring
from smptune.trainable import FoldContext, RunCheckpoint, RunLost, SweepSettings
from smptune.training import SegmentationTrainable
from smptune.training.ddp_channel import LineReader, RankChannel, reply_line
from smptune.training.settings import run_settings
from smptune.worker.devices import DEVICES_ENV

pytestmark = pytest.mark.usefixtures("isolated_cache")

PARAMS = {"batch_size": 2, "model_encoder": "resnet18", "augment": False}


def _settings(n_images: int = 12, n_folds: int = 2, **training: object) -> SweepSettings:
    scoring = Scoring.from_config("iou")
    return SweepSettings(
        seed=7,
        metric="iou",
        mode="max",
        scoring=scoring,
        data={"synthetic": {"n_images": n_images, "size": 32, "seed": 3}, "test_fraction": 0.25},
        cv={"n_folds": n_folds},
        training={"max_epochs": 2, "devices_per_trial": 2, **training},
    )


def _ranks_of(parent: int) -> list[int]:
    """The DDP rank processes ``parent`` started."""
    pids = []
    for entry in Path("/proc").iterdir():
        try:
            argv = (entry / "cmdline").read_bytes().split(b"\0")
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if b"smptune.training.ddp_rank" in argv and ppid == parent:
            pids.append(int(entry.name))
    return pids


def test_devices_per_trial_is_an_integer_of_at_least_one():
    assert run_settings(_settings()).devices_per_trial == 2
    assert run_settings(_settings(devices_per_trial=1)).devices_per_trial == 1
    for bad in (0, "two", 1.5, True):
        with pytest.raises(ConfigError, match=r"training\.devices_per_trial: must be an integer"):
            run_settings(_settings(devices_per_trial=bad))


def test_a_worker_that_owns_fewer_devices_is_refused_with_the_option_that_gives_them(
    monkeypatch, tmp_path
):
    monkeypatch.setenv(DEVICES_ENV, "1")
    context = FoldContext("s", 0, 0, 2, _settings(), output_dir=tmp_path)
    with pytest.raises(TrialError, match="--devices-per-worker 2") as error:
        SegmentationTrainable().train_fold(PARAMS, context)
    assert "this one owns 1 device " in str(error.value)
    assert not _ranks_of(os.getpid())


def test_two_ranks_train_a_fold_and_report_each_epoch_through_rank_0(monkeypatch, tmp_path):
    monkeypatch.setenv(DEVICES_ENV, "2")
    reports: list[tuple[int, dict[str, float]]] = []
    saved: list[int] = []
    checkpoint = RunCheckpoint(
        tmp_path / "run.ckpt", due=lambda epoch: epoch == 1, saved=saved.append
    )
    context = FoldContext(
        "s",
        0,
        1,
        2,
        _settings(save_checkpoints="best"),
        output_dir=tmp_path,
        report=lambda epoch, metrics: reports.append((epoch, dict(metrics))),
        checkpoint=checkpoint,
    )
    result = SegmentationTrainable().train_fold(PARAMS, context)
    # the run's result is rank 0's, at its best epoch of the two it reported
    assert result.epochs_run == 2 and [epoch for epoch, _ in reports] == [1, 2]
    assert result.metrics == reports[result.best_epoch - 1][1]
    # the checkpoint was written once, whole, when the caller said it was due
    assert saved == [1] and checkpoint.path.is_file()
    assert not list(tmp_path.glob("*.partial"))
    # rank 0 alone wrote the epoch log
    assert (tmp_path / "logs" / "fold_1_seed_0" / "metrics.csv").is_file()
    assert not _ranks_of(os.getpid())
    # and the figures are the whole fold's: its best model, saved by rank 0, scores the same
    # on every validation sample of the fold in one process
    assert _whole_fold_metrics(context, tmp_path / "logs" / "fold_1_seed_0" / "best_model") == (
        pytest.approx({k: result.metrics[k] for k in ("iou", "f1", "accuracy")}, rel=1e-5)
    )


def _whole_fold_metrics(context: FoldContext, folder: Path) -> dict[str, float]:
    import segmentation_models_pytorch as smp
    import torch

    from smptune.training.evaluation import SegmentationMetrics
    from smptune.training.splits import splits_for

    _, data, plan = splits_for(context.settings)
    evaluate = list(plan.fold(context.fold).evaluate)
    model = smp.from_pretrained(folder).eval()
    meter = SegmentationMetrics(data.classes)
    with torch.no_grad():
        logits = model(torch.from_numpy(data.float_images(evaluate)))
    meter.update(logits, torch.from_numpy(data.stacked()[1][evaluate].copy()))
    computed = meter.compute()
    return {k: computed[k] for k in ("iou", "f1", "accuracy")}


def test_a_stop_asked_at_an_epoch_boundary_ends_every_rank_there(monkeypatch, tmp_path):
    monkeypatch.setenv(DEVICES_ENV, "2")
    reports: list[int] = []
    context = FoldContext(
        "s",
        0,
        0,
        2,
        _settings(max_epochs=5),
        report=lambda epoch, metrics: reports.append(epoch),
        should_stop=lambda: len(reports) >= 1,
    )
    result = SegmentationTrainable().train_fold(PARAMS, context)
    assert result.epochs_run == 1 and reports == [1]


def test_a_rank_killed_mid_run_loses_the_run_and_the_others_are_killed(monkeypatch):
    monkeypatch.setenv(DEVICES_ENV, "2")
    parent = os.getpid()

    def kill_rank_1(epoch: int, metrics: object) -> None:
        for pid in _ranks_of(parent):
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            if argv[-2] == b"-1":  # rank 1: it is handed no pipes
                os.kill(pid, signal.SIGKILL)

    context = FoldContext("s", 0, 0, 2, _settings(max_epochs=20), report=kill_rank_1)
    with pytest.raises(RunLost, match=r"rank 1 of the fold's 2-process DDP run was lost"):
        SegmentationTrainable().train_fold(PARAMS, context)
    assert not _ranks_of(parent)


def test_a_rank_that_fails_with_an_error_fails_the_run_with_that_error(monkeypatch):
    monkeypatch.setenv(DEVICES_ENV, "2")
    # 4 images: 3 to train on, one validation sample per fold for two ranks
    context = FoldContext("s", 0, 0, 3, _settings(n_images=4, n_folds=3))
    with pytest.raises(TrialError, match="need at least 2 validation samples per fold") as error:
        SegmentationTrainable().train_fold(PARAMS, context)
    assert not isinstance(error.value, RunLost)
    assert str(error.value).startswith("DDP rank ")


def test_the_channel_carries_rank_0s_calls_and_the_answers():
    to_parent_r, to_parent_w = os.pipe()
    to_rank_r, to_rank_w = os.pipe()
    channel = RankChannel(to_rank_r, to_parent_w)
    reader = LineReader(to_parent_r)
    channel.report(1, {"iou": 0.5, "loss": float("nan")})
    reply_line(to_rank_w, True)
    assert channel.due(1) is True
    channel.saved(1)
    reply_line(to_rank_w, False)
    assert channel.should_stop() is False
    messages = reader.read()
    assert [m["op"] for m in messages] == ["report", "due", "saved", "should_stop"]
    assert messages[0]["metrics"]["iou"] == 0.5
    os.close(to_rank_w)
    with pytest.raises(TrialError, match="is gone"):
        channel.should_stop()
    for fd in (to_parent_r, to_parent_w, to_rank_r):
        os.close(fd)
