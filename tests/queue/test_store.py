"""The sweep store, scoring and the results folder, on a real Redis."""

from __future__ import annotations

import math

import pytest
import yaml

from smptune.config import config_from_dict, load_config
from smptune.fakes import QuadraticTrainable
from smptune.queue.store import ALREADY_FINISHED, RECORDED, SweepStore
from smptune.records import TrialRecord, TrialStatus
from smptune.results.folder import best_config, write_results
from smptune.results.summary import SweepResults
from smptune.search.scoring import best_epochs, rank_trials, score_at_epoch
from smptune.urls import mask_secrets, mask_url

from conftest import wait_for, write_config


def _sweep(store: SweepStore, tmp_path, n_trials: int = 3) -> str:
    config = load_config(write_config(tmp_path / "s.yaml", n_trials=n_trials)).to_dict()
    params = [{**QuadraticTrainable.defaults, "x": float(i)} for i in range(n_trials)]
    store.create_sweep("s1", config, params, 3, str(tmp_path))
    return "s1"


def test_a_fold_and_a_trial_are_recorded_once(store: SweepStore, tmp_path):
    sweep_id = _sweep(store, tmp_path)
    fold = {"metrics": {"score": 0.5}, "best_epoch": 1, "epochs_run": 1, "duration_s": 0.1}

    assert store.record_fold(sweep_id, 0, 0, fold) is True
    assert store.record_fold(sweep_id, 0, 0, {**fold, "metrics": {"score": 0.9}}) is False
    assert store.folds(sweep_id, 0)[0]["metrics"]["score"] == 0.5
    assert store.get_sweep(sweep_id).folds_done == 1

    assert store.finish_trial(sweep_id, 0, {"status": "complete", "score": 0.5}) == RECORDED
    late = store.finish_trial(sweep_id, 0, {"status": "failed", "error": "late copy"})
    assert late == ALREADY_FINISHED
    sweep = store.get_sweep(sweep_id)
    assert (sweep.count("complete"), sweep.count("failed")) == (1, 0)
    assert store.trials(sweep_id)[0].status == "complete"
    assert store.best_score(sweep_id, "max") == (0, 0.5)


def test_a_nan_score_is_recorded_but_never_best(store: SweepStore, tmp_path):
    sweep_id = _sweep(store, tmp_path)
    assert store.finish_trial(sweep_id, 1, {"status": "complete", "score": math.nan})
    assert store.best_score(sweep_id, "max") is None
    assert math.isnan(store.trials(sweep_id)[1].score)


def test_running_trials_show_worker_and_fold(store: SweepStore, tmp_path):
    sweep_id = _sweep(store, tmp_path)
    store.trial_started(sweep_id, 2, "gpu1@node", "1")
    store.fold_started(sweep_id, 2, 1)
    [running] = store.running(sweep_id)
    assert (running["trial"], running["worker"], running["fold"]) == (2, "gpu1@node", 1)
    store.finish_trial(sweep_id, 2, {"status": "failed", "error": "boom"})
    assert store.running(sweep_id) == []


def test_ranking_puts_failed_and_nan_trials_last():
    trials = [
        TrialRecord(0, TrialStatus.COMPLETE, score=0.2),
        TrialRecord(1, TrialStatus.FAILED, score=None),
        TrialRecord(2, TrialStatus.COMPLETE, score=0.9),
        TrialRecord(3, TrialStatus.COMPLETE, score=math.nan),
    ]
    assert [t.trial for t in rank_trials(trials, "max")] == [2, 0, 1, 3]
    assert [t.trial for t in rank_trials(trials, "min")] == [0, 2, 1, 3]


def test_retrain_epochs_are_the_mean_median_or_max_best_epoch():
    folds = {0: {"best_epoch": 3}, 1: {"best_epoch": 3}, 2: {"best_epoch": 9}}
    assert best_epochs(folds, "mean") == 5
    assert best_epochs(folds, "median") == 3
    assert best_epochs(folds, "max") == 9
    assert best_epochs({}, "max") == 1


def test_the_cv_at_the_retrains_epochs_reads_each_run_at_that_epoch():
    curves = {0: (0.4, 0.6, 0.5), 1: (0.3, 0.7), 2: ()}
    at_two = score_at_epoch(curves, 2)
    assert at_two is not None
    assert at_two.to_dict() == {
        "epochs": 2,
        "score": pytest.approx(0.65),
        "std": pytest.approx(0.05),
        "per_run": {0: 0.6, 1: 0.7},
    }
    # a run that stopped sooner counts with its last epoch
    at_three = score_at_epoch(curves, 3)
    assert at_three is not None and at_three.per_run == {0: 0.5, 1: 0.7}
    assert score_at_epoch({0: ()}, 2) is None


def test_best_config_is_a_valid_config_with_every_value_fixed(tmp_path):
    config = load_config(write_config(tmp_path / "s.yaml"))
    again = config_from_dict(yaml.safe_load(yaml.safe_dump(best_config(config, {"x": 1.5}))))
    assert again.configurations() == [{"x": 1.5}]
    assert again.name == "quad-best"


def test_results_folder_from_a_summary(tmp_path):
    config = load_config(write_config(tmp_path / "s.yaml"))
    results = {
        "n_folds": 2,
        "metric": "score",
        "best": {"trial": 0, "params": {"x": 1.0}},
        "ranking": [
            {
                "trial": 0,
                "rank": 1,
                "status": "complete",
                "params": {"x": 1.0},
                "folds": {0: {"metrics": {"score": 0.5}}, 1: {"metrics": {"score": 0.7}}},
                "fold_scores": [0.5, 0.7],
                "score": 0.6,
                "score_std": 0.1,
                "duration_s": 1.0,
                "worker": "cpu0@h",
            }
        ],
    }
    out = write_results(SweepResults.from_dict(results), config, tmp_path / "out", {"score": 0.61})
    assert (out / "trials.csv").read_text().splitlines()[1].startswith("0,1,complete,1.0,0.5,0.7")
    assert (out / "final" / "test_metrics.json").exists()


def test_trials_csv_shows_every_run_and_each_combined_metric(tmp_path):
    # Given a trial of two folds × two seeds scored by iou and loss combined, one run unstable
    config = load_config(write_config(tmp_path / "s.yaml"))
    runs = {
        0: {"metrics": {"iou": 0.5, "loss": 0.25}},
        1: {"metrics": {"iou": 0.6, "loss": 0.5}},
        2: {"metrics": {"iou": 0.0, "loss": 0.4}},
        3: {"metrics": {"iou": 0.7, "loss": 0.2}},
    }
    results = {
        "n_folds": 2,
        "n_randoms": 2,
        "metric": "harmonic(iou, 1/loss)",
        "scoring": {"metrics": ["iou", "loss:lower"], "combine": "harmonic"},
        "best": None,
        "ranking": [
            {
                "trial": 0,
                "rank": 1,
                "status": "complete",
                "params": {"x": 1.0},
                "folds": runs,
                "fold_scores": [0.8, 0.923, float("nan"), 1.1],
                "score": 0.94,
                "unstable": True,
            }
        ],
    }
    # When the results folder is written
    out = write_results(SweepResults.from_dict(results), config, tmp_path / "out")
    # Then trials.csv has a score column per run and a column per metric of each run
    header, row = (line.split(",") for line in (out / "trials.csv").read_text().splitlines())
    cells = dict(zip(header, row, strict=True))
    assert header[4:16] == [
        "fold_0_seed_0",
        "fold_0_seed_0:iou",
        "fold_0_seed_0:loss",
        "fold_0_seed_1",
        "fold_0_seed_1:iou",
        "fold_0_seed_1:loss",
        "fold_1_seed_0",
        "fold_1_seed_0:iou",
        "fold_1_seed_0:loss",
        "fold_1_seed_1",
        "fold_1_seed_1:iou",
        "fold_1_seed_1:loss",
    ]
    assert (cells["fold_0_seed_1"], cells["fold_0_seed_1:loss"]) == ("0.923", "0.5")
    assert (cells["fold_1_seed_0"], cells["fold_1_seed_0:iou"]) == ("nan", "0.0")
    assert cells["unstable"] == "yes"


def test_urls_are_masked():
    url = "rediss://worker:pa55word@redis.internal:6380/2"
    assert mask_url(url) == "rediss://worker:***@redis.internal:6380/2"
    assert mask_url("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    assert "pa55word" not in mask_secrets(f"cannot reach {url} (auth pa55word)", url)


def test_a_redelivered_trial_resumes_from_its_first_unfinished_fold(
    tmp_path, celery_app, store: SweepStore, start_workers
):
    # Given a trial whose first fold was recorded before its worker was lost
    markers = tmp_path / "markers"
    markers.mkdir()
    workers = start_workers(
        "--cpu",
        "1",
        "--allow-trainable",
        "user_trainables.plain:MarkingTrainable",
        SMPTUNE_TEST_MARKER_DIR=str(markers),
    )
    config = load_config(
        write_config(tmp_path / "s.yaml", trainable="user_trainables.plain:MarkingTrainable")
    ).to_dict()
    params = {**QuadraticTrainable.defaults, "x": 1.0, "y": -2.0}
    store.create_sweep("resume", config, [params], 3, str(tmp_path))
    earlier = {"metrics": {"score": 0.25, "loss": 3.0}, "best_epoch": 1, "epochs_run": 1}
    store.record_fold("resume", 0, 0, earlier)

    # When the trial runs again
    celery_app.send_task("smptune.cv_trial", args=("resume", 0), queue="smptune")
    wait_for(lambda: store.is_finished("resume", 0), 60)

    # Then only folds 1 and 2 ran, and the score uses the recorded fold 0
    assert sorted(p.name for p in markers.iterdir()) == ["resume-0-1", "resume-0-2"]
    [trial] = store.trials("resume")
    assert trial.score == (0.25 + 1.0 + 1.0) / 3
    # and a copy of the finished trial runs nothing and records nothing
    celery_app.send_task("smptune.cv_trial", args=("resume", 0), queue="smptune")
    wait_for(lambda: "trial 0 already finished" in workers.logs(), 60)
    assert store.get_sweep("resume").count("complete") == 1
    assert len(list(markers.iterdir())) == 2


def test_a_reaped_copy_cannot_revive_its_lease(store: SweepStore, tmp_path):
    # Given a running trial whose holder was cut off long enough for its lease to expire
    sweep_id = _sweep(store, tmp_path)
    holder = store.lease(sweep_id, 0, host="host-a")
    assert holder.try_acquire()
    store.trial_started(sweep_id, 0, "cpu0@host-a", "")
    store.r.delete(store.lease_key(sweep_id, 0))
    assert holder.renew()  # an expiry alone (a Redis restart) is survived
    store.r.delete(store.lease_key(sweep_id, 0))

    # When the reaper takes the trial back before the holder's network heals
    assert store.claim_orphan(sweep_id, 0)

    # Then the holder's next renewal fails instead of re-creating the lease
    assert not holder.renew()
    assert holder.lost.is_set()
    assert not store.lease_exists(sweep_id, 0)
    # and the re-queued copy can take it
    assert store.lease(sweep_id, 0, host="host-b").try_acquire()


def test_a_preempted_trial_is_given_back_once_by_its_own_worker_without_counting_the_attempt(
    store: SweepStore, tmp_path
):
    # Given trial 1 started twice (a lost worker, then a live one holding its lease)
    sweep_id = _sweep(store, tmp_path)
    store.trial_started(sweep_id, 1, "gpu0@a", "0")
    assert store.trial_started(sweep_id, 1, "gpu0@b", "0") == 2
    lease = store.lease(sweep_id, 1, host="b")
    assert lease.try_acquire()

    # Then another worker, or a copy without the lease, cannot give it back
    assert not store.requeue_preempted(sweep_id, 1, "gpu0@a")
    assert not store.requeue_preempted(sweep_id, 1, "gpu0@b", lease="b:1:other")
    # and its worker can, once: off the running set, lease dropped, the attempt uncounted
    assert store.requeue_preempted(sweep_id, 1, "gpu0@b", lease=lease.value)
    assert not store.requeue_preempted(sweep_id, 1, "gpu0@b", lease=lease.value)
    trial = store.trials(sweep_id, [1])[0]
    assert (trial.status, trial.attempts, trial.preemptions) == ("requeued", 1, 1)
    assert store.running_numbers(sweep_id) == [] and not store.lease_exists(sweep_id, 1)


def test_a_preempted_workers_runs_hear_it_with_their_next_epoch(store: SweepStore, tmp_path):
    sweep_id = _sweep(store, tmp_path)
    assert store.record_epoch(sweep_id, 0, 0, 1, 0.5, "gpu0@a") is None
    store.preempt(["gpu0@a"], hold_s=30)
    assert store.record_epoch(sweep_id, 0, 0, 2, 0.6, "gpu0@a") == "preempted"
    assert store.record_epoch(sweep_id, 0, 0, 2, 0.6, "gpu1@a") is None
    store.request_cancel(sweep_id)
    assert store.record_epoch(sweep_id, 0, 0, 3, 0.7, "gpu0@a") == "cancelled"  # final wins
    store.preempted(["gpu0@a"])
    assert not store.preempting("gpu0@a")
