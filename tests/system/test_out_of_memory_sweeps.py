"""Out of memory as a constraint, end to end through the real CLI, a real Redis and real
worker processes: trials that run out of memory (the fake's CUDA-named error, the host's
limit) end ``infeasible`` with what they tried, TPE's study holds them as a violated
constraint, ``on_oom: halve_batch`` tries each once more with half the batch size, and the
results and the report list them."""

from __future__ import annotations

import json
from pathlib import Path

from smptune.queue.store import SweepStore
from smptune.search.study_view import StudyView

from conftest import run_cli, submit_and_wait, write_config

MEMORY_BOUND = "smptune.fakes:MemoryBoundTrainable"


def _ranking(artifacts: Path, sweep_id: str) -> dict[int, dict]:
    results = json.loads((artifacts / sweep_id / "results.json").read_text())
    return {t["trial"]: t for t in results["ranking"]}


def test_tpe_records_out_of_memory_as_infeasible_and_sees_it_as_a_violated_constraint(
    tmp_path, redis_server, store: SweepStore, start_workers
):
    # Given a TPE sweep on a device of 64 units where batch_size x width over 64 runs out
    start_workers("--cpu", "2")
    config = write_config(
        tmp_path / "tpe.yaml",
        trainable=MEMORY_BOUND,
        n_trials=10,
        sampler={"type": "tpe", "n_startup_trials": 4},
        cv={"n_folds": 2},
        enqueue=[{"x": 1.0, "width": 1.0}, {"x": 1.0, "width": 3.5}],
        hyperparameters={
            "x": {"low": -2.0, "high": 3.0},
            "y": -2.0,
            "batch_size": 32,
            "width": {"low": 0.5, "high": 4.0},
        },
    )

    # When it runs
    artifacts = tmp_path / "artifacts"
    sweep_id, result = submit_and_wait(config, redis_server.url, artifacts)
    assert result.returncode == 0, result.stderr + result.stdout

    # Then the trials whose batch did not fit ended infeasible, the others complete
    sweep = store.get_sweep(sweep_id, full=True)
    trials = {t.trial: t for t in store.trials(sweep_id)}
    infeasible = {n for n, t in trials.items() if t.status == "infeasible"}
    assert infeasible == {n for n, t in trials.items() if 32 * t.params["width"] > 64}
    assert 1 in infeasible and 0 not in infeasible
    assert sweep.count("infeasible") == len(infeasible)
    assert sweep.count("complete") == 10 - len(infeasible) and sweep.status == "done"
    # with what they tried: the run, the batch size and the error; never ranked as best
    oom = trials[1].out_of_memory
    assert oom is not None and (oom.fold, oom.repeat, oom.batch_size) == (0, 0, 32)
    assert "OutOfMemoryError: CUDA out of memory" in oom.error
    assert oom.retried_batch_size is None  # no on_oom: halve_batch
    assert "out of memory at fold 0 seed 0 with batch_size 32" in (trials[1].error or "")
    assert sweep.results["best"]["trial"] not in infeasible
    ranking = _ranking(artifacts, sweep_id)
    assert ranking[1]["status"] == "infeasible" and ranking[1]["score"] is None
    assert ranking[1]["out_of_memory"]["batch_size"] == 32
    assert ranking[1]["params"]["width"] == 3.5
    assert json.loads((artifacts / sweep_id / "results.json").read_text())[
        "trials_infeasible"
    ] == len(infeasible)
    # and a worker's study view holds them as complete with the constraint violated
    view = StudyView(sweep.config, 1)
    assert view.update(store.trials(sweep_id))
    by_trial = {t.user_attrs["trial"]: t for t in view.study.trials}
    assert by_trial[1].state.name == "COMPLETE"
    assert by_trial[1].system_attrs["constraints"] == (1.0,)
    assert by_trial[0].system_attrs["constraints"] == (0.0,)
    # and the report draws the infeasible region in the parallel-coordinates plot
    page = (artifacts / sweep_id / "report.html").read_text()
    assert "infeasible (out of memory)" in page
    assert '<span class="badge infeasible">infeasible</span>' in page
    # and producer status counts them
    status = run_cli("producer", "status", sweep_id, "--broker", redis_server.url)
    assert status.returncode == 0, status.stderr
    assert f"{len(infeasible)} infeasible" in status.stdout + status.stderr


def test_random_search_halves_the_batch_once_and_records_the_batch_size_it_ran_with(
    tmp_path, redis_server, store: SweepStore, start_workers
):
    # Given a random search with on_oom: halve_batch and a host-memory limit, whose first
    # trials run out of memory once (128), twice (256), over the host's limit (1000 MB held)
    workers = start_workers("--cpu", "1")
    config = write_config(
        tmp_path / "halve.yaml",
        trainable=MEMORY_BOUND,
        n_trials=4,
        cv={"n_folds": 2},
        on_oom="halve_batch",
        training={"max_epochs": 3, "max_host_memory_gb": 0.8},
        enqueue=[
            {"batch_size": 128, "host_mb": 0},
            {"batch_size": 256, "host_mb": 0},
            {"batch_size": 16, "host_mb": 1000},
            {"batch_size": 16, "host_mb": 0},
        ],
        hyperparameters={
            "x": 1.0,
            "y": -2.0,
            "batch_size": [16, 128, 256],
            "host_mb": [0, 1000],
        },
    )

    # When it runs
    artifacts = tmp_path / "artifacts"
    sweep_id, result = submit_and_wait(config, redis_server.url, artifacts)
    assert result.returncode == 0, result.stderr + result.stdout

    # Then the batch of 128 ran again with 64 and completed, each run recorded with 64
    trials = {t.trial: t for t in store.trials(sweep_id)}
    assert [trials[n].status for n in range(4)] == [
        "complete",
        "infeasible",
        "infeasible",
        "complete",
    ]
    assert trials[0].batch_size == 64 and trials[0].params["batch_size"] == 128
    assert [run["batch_size"] for run in trials[0].folds.values()] == [64, 64]
    assert trials[0].out_of_memory is not None
    assert trials[0].out_of_memory.retried_batch_size == 64
    # and the batch of 256 ran out again with 128: infeasible, tried once more only
    oom = trials[1].out_of_memory
    assert oom is not None and (oom.batch_size, oom.retried_batch_size) == (256, 128)
    assert "batch_size 128 x width" in oom.error  # the error of its second try
    assert trials[1].batch_size == 128 and not trials[1].folds
    # and the trial over the host's limit was stopped after its epoch, tried with 8, infeasible
    host = trials[2].out_of_memory
    assert host is not None and "training.max_host_memory_gb 0.8" in host.error
    assert (host.batch_size, host.retried_batch_size) == (16, 8)
    assert trials[2].partial is not None and trials[2].partial.epochs == 1
    # and a trial that fits ran with its own batch size
    assert trials[3].batch_size is None and trials[3].out_of_memory is None
    # and results.json lists them with the batch size they ran with
    ranking = _ranking(artifacts, sweep_id)
    assert ranking[0]["batch_size"] == 64 and ranking[0]["status"] == "complete"
    assert ranking[1]["out_of_memory"]["retried_batch_size"] == 128
    # and the worker said so
    assert "on_oom: halve_batch tries it with batch_size 64" in workers.logs()
