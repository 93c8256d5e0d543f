"""The ``workers`` command: device pinning, supervision, and what a worker refuses to run."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import pytest

from smptune.config import load_config
from smptune.fakes import QuadraticTrainable
from smptune.queue.store import SweepStore
from smptune.worker.host_share import format_cpulist

from conftest import one_line_error, run_cli, submit_and_wait, wait_for, write_config


def _processes_in_group(pgid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            fields = stat.rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] != "Z":
                pids.append(int(entry.name))
    return pids


def _children(pid: int) -> list[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in path.read_text().split()] if path.exists() else []


def _record_sweep(store: SweepStore, config_path: Path, trainable: str | None = None) -> str:
    """Record a sweep directly in Redis, as someone with write access to it could."""
    config = load_config(config_path).to_dict()
    if trainable:
        config["trainable"] = trainable
    params = {**QuadraticTrainable.defaults, "x": 1.0, "y": -2.0}
    store.create_sweep("crafted", config, [params], 2, "/tmp")
    return "crafted"


def test_each_worker_sees_only_its_own_device(tmp_path, redis_server, store, start_workers):
    # Given workers on devices 0 and 1, and trials slow enough to be shared between them
    start_workers("--devices", "0", "1", "--hostname", "node")
    config = write_config(
        tmp_path / "s.yaml",
        n_trials=8,
        cv={"n_folds": 2},
        hyperparameters={"x": {"low": 0.0, "high": 1.0}, "sleep": 0.3},
    )
    sweep_id, result = submit_and_wait(config, redis_server.url, tmp_path / "a")
    assert result.returncode == 0, result.stderr

    # Then every trial reports the CUDA_VISIBLE_DEVICES of the worker that ran it
    trials = store.trials(sweep_id)
    assert {t.worker for t in trials} == {"gpu0@node", "gpu1@node"}
    for t in trials:
        assert t.device == t.worker[len("gpu") :].split("@")[0]


def _run_share_reporters(
    tmp_path: Path, broker: str, start_workers, *worker_args: str, n_trials: int, sleep: float
) -> tuple[str, list[dict], object]:
    """Start ``workers start WORKER_ARGS`` with the share-reporting trainable, run a sweep of
    ``n_trials`` × 2 folds through the CLI; the sweep id, every run's report of what its
    process got of the machine, and the workers."""
    share_dir = tmp_path / "shares"
    share_dir.mkdir()
    workers = start_workers(
        *worker_args,
        "--allow-trainable",
        "user_trainables.torch_at_top:ShareReporter",
        SMPTUNE_TEST_SHARE_DIR=str(share_dir),
    )
    config = write_config(
        tmp_path / "s.yaml",
        n_trials=n_trials,
        cv={"n_folds": 2},
        trainable="user_trainables.torch_at_top:ShareReporter",
        hyperparameters={"x": {"low": 0.0, "high": 1.0}, "sleep": sleep},
    )
    sweep_id, result = submit_and_wait(config, broker, tmp_path / "a")
    assert result.returncode == 0, result.stderr
    reports = [json.loads(p.read_text()) for p in sorted(share_dir.glob("*.json"))]
    return sweep_id, reports, workers


def test_cpu_workers_each_get_their_own_cores_and_threads(
    tmp_path, redis_server, store, start_workers
):
    # Given two CPU workers on this machine and a trainable that reports what it got
    cores = sorted(os.sched_getaffinity(0))
    sweep_id, reports, workers = _run_share_reporters(
        tmp_path,
        redis_server.url,
        start_workers,
        "--cpu",
        "2",
        "--hostname",
        "node",
        n_trials=6,
        sleep=0.3,
    )

    # Then each worker ran on its own half of the cores, torch and OpenMP with as many threads
    assert len(reports) == 6 * 2
    by_worker = {r["worker"]: r for r in reports}
    assert set(by_worker) == {"cpu0@node", "cpu1@node"}
    half = max(1, len(cores) // 2)
    for r in reports:
        assert len(r["affinity"]) == half and set(r["affinity"]) <= set(cores), r
        assert r["threads"] == r["interop_threads"] == half and r["omp"] == str(half), r
        assert r["cuda_visible_devices"] == "" and r["memory_fraction"] is None
    if len(cores) >= 2:
        assert not set(by_worker["cpu0@node"]["affinity"]) & set(by_worker["cpu1@node"]["affinity"])
    # and the start log and each trial's record say so
    for name in by_worker:
        share = f"cpus {format_cpulist(by_worker[name]['affinity'])} ({half} thread"
        assert f"started {name} (pid" in workers.logs() and share in workers.logs()
    assert {t.worker for t in store.trials(sweep_id)} == {"cpu0@node", "cpu1@node"}


def test_several_slots_share_each_gpu_with_their_own_names_cores_and_memory(
    tmp_path, redis_server, store, start_workers
):
    # Given two GPUs with two slots each, and trials enough for every slot
    sweep_id, reports, _ = _run_share_reporters(
        tmp_path,
        redis_server.url,
        start_workers,
        "--devices",
        "0",
        "1",
        "--slots-per-device",
        "2",
        "--hostname",
        "node",
        "--no-preload",
        n_trials=16,
        sleep=0.4,
    )

    # Then four workers ran, each named by device and slot, pinned to its device, with half
    # of its memory and a share of the cores
    names = {"gpu0-0@node", "gpu0-1@node", "gpu1-0@node", "gpu1-1@node"}
    assert {r["worker"] for r in reports} == names
    cores = sorted(os.sched_getaffinity(0))
    for r in reports:
        assert r["cuda_visible_devices"] == r["worker"][3], r  # gpu<device>-<slot>@node
        assert r["memory_fraction"] == "0.5", r
        assert len(r["affinity"]) == max(1, len(cores) // 4) == r["threads"], r
    assert {t.worker for t in store.trials(sweep_id)} == names


def test_all_cpus_per_worker_keeps_every_worker_on_the_whole_machine(
    tmp_path, redis_server, store, start_workers
):
    _, reports, _ = _run_share_reporters(
        tmp_path,
        redis_server.url,
        start_workers,
        "--cpu",
        "2",
        "--cpus-per-worker",
        "all",
        n_trials=2,
        sleep=0.0,
    )
    cores = sorted(os.sched_getaffinity(0))
    assert len(reports) == 2 * 2
    for r in reports:
        assert r["affinity"] == cores and r["threads"] == len(cores), r


def test_a_cuda_out_of_memory_makes_the_trial_infeasible_and_the_worker_goes_on(
    tmp_path, redis_server, store, start_workers
):
    # Given one slot of a shared GPU whose second trial runs out of device memory
    start_workers(
        "--devices",
        "0",
        "--slots-per-device",
        "2",
        "--no-preload",
        "--allow-trainable",
        "user_trainables.torch_at_top:OutOfMemory",
        SMPTUNE_TEST_OOM_TRIALS="1",
    )
    config = write_config(
        tmp_path / "s.yaml", n_trials=4, trainable="user_trainables.torch_at_top:OutOfMemory"
    )
    sweep_id, result = submit_and_wait(config, redis_server.url, tmp_path / "a")

    # Then that trial is infeasible with what it tried, and every other trial completed
    assert result.returncode == 0, result.stderr
    trials = store.trials(sweep_id)
    assert [t.status for t in trials] == ["complete", "infeasible", "complete", "complete"]
    oom = trials[1].out_of_memory
    assert oom is not None and oom.error.startswith("OutOfMemoryError: CUDA out of memory")
    assert store.get_sweep(sweep_id).status == "done"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--slots-per-device", "0"], "--slots-per-device: must be >= 1, got 0"),
        (["--cpu", "2", "--slots-per-device", "2"], "--slots-per-device: only for GPU workers"),
        (["--cpus-per-worker", "many"], "--cpus-per-worker: must be auto, all or a count >= 1"),
        (["--cpus-per-worker", "4096"], "--cpus-per-worker: 4096 is more than the"),
        (["--devices-per-worker", "0"], "--devices-per-worker: must be >= 1, got 0"),
        (
            ["--devices", "0", "1", "--devices-per-worker", "2", "--slots-per-device", "2"],
            "--devices-per-worker: not with --slots-per-device",
        ),
        (["--devices", "0", "--devices-per-worker", "2"], "--devices-per-worker: 2 is more than"),
    ],
)
def test_a_bad_share_of_the_machine_is_one_clear_error(args, message):
    # the broker is never reached: the arguments are checked first
    result = run_cli("workers", "start", "--broker", "redis://127.0.0.1:1/0", *args)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("grace", ["0", "-5", "7200"])
def test_a_preempt_grace_out_of_range_is_refused_before_any_worker_starts(grace: str):
    result = run_cli(
        "workers",
        "start",
        "--cpu",
        "1",
        "--broker",
        "redis://127.0.0.1:1/0",
        "--preempt-grace",
        grace,
    )
    one_line_error(result, 2, "--preempt-grace", grace, command="workers")


def test_a_pickled_message_is_refused(tmp_path, celery_app, store, start_workers):
    # Given a running worker and a sweep recorded in Redis
    workers = start_workers("--cpu", "1")
    sweep_id = _record_sweep(store, write_config(tmp_path / "s.yaml"))

    # When someone sends the trial as a pickle
    celery_app.send_task(
        "smptune.cv_trial", args=(sweep_id, 0), serializer="pickle", queue="smptune"
    )

    # Then the worker refuses it and runs nothing
    wait_for(lambda: "untrusted content of type pickle" in workers.logs(), 60)
    assert store.trials(sweep_id)[0].status == "pending"
    # while the same trial as JSON runs
    celery_app.send_task("smptune.cv_trial", args=(sweep_id, 0), queue="smptune")
    wait_for(lambda: store.trials(sweep_id)[0].status == "complete", 60)


def test_a_trainable_outside_the_allow_list_fails_and_runs_nothing(
    tmp_path, redis_server, celery_app, store, start_workers
):
    markers = tmp_path / "markers"
    markers.mkdir()
    workers = start_workers("--cpu", "1", SMPTUNE_TEST_MARKER_DIR=str(markers))
    # Given a sweep naming the user's own trainable, which these workers were not told to allow
    config = write_config(
        tmp_path / "s.yaml", n_trials=2, trainable="user_trainables.plain:MarkingTrainable"
    )
    sweep_id, _ = submit_and_wait(config, redis_server.url, tmp_path / "a")

    # Then every trial failed with the reason, no fold ran, and the sweep still finished
    trials = store.trials(sweep_id)
    assert [t.status for t in trials] == ["failed", "failed"]
    assert all("not allowed" in t.error and "--allow-trainable" in t.error for t in trials)
    assert list(markers.iterdir()) == []
    assert store.get_sweep(sweep_id).finalize_runs == 1

    # And a message naming os:system, written straight into Redis, is refused the same way
    crafted = _record_sweep(store, write_config(tmp_path / "c.yaml"), trainable="os:system")
    celery_app.send_task("smptune.cv_trial", args=(crafted, 0), queue="smptune")
    wait_for(lambda: store.trials(crafted)[0].status == "failed", 60)
    assert "'os:system' is not allowed" in store.trials(crafted)[0].error
    assert store.folds(crafted, 0) == {}
    workers.stop()


def test_an_allowed_trainable_runs(tmp_path, redis_server, store, start_workers):
    markers = tmp_path / "markers"
    markers.mkdir()
    start_workers(
        "--cpu",
        "1",
        "--allow-trainable",
        "user_trainables.plain:MarkingTrainable",
        SMPTUNE_TEST_MARKER_DIR=str(markers),
    )
    config = write_config(
        tmp_path / "s.yaml", n_trials=2, trainable="user_trainables.plain:MarkingTrainable"
    )
    sweep_id, result = submit_and_wait(config, redis_server.url, tmp_path / "a")
    assert result.returncode == 0, result.stderr
    assert [t.status for t in store.trials(sweep_id)] == ["complete", "complete"]
    assert len(list(markers.iterdir())) == 2 * 3


@pytest.mark.parametrize("preload", [True, False])
def test_preload_imports_the_training_stack_before_each_fresh_pool_child(
    preload, tmp_path, redis_server, store, start_workers
):
    # Given CPU workers that start a fresh pool child for every trial, with or without --preload
    start_workers(
        "--cpu",
        "1",
        "--preload" if preload else "--no-preload",
        "--max-tasks-per-child",
        "1",
        "--allow-trainable",
        "user_trainables.plain:ImportReporter",
    )
    config = write_config(
        tmp_path / "s.yaml",
        n_trials=2,
        trainable="user_trainables.plain:ImportReporter",
        cv={"n_folds": 2},
    )

    # When a sweep runs
    sweep_id, result = submit_and_wait(config, redis_server.url, tmp_path / "a")

    # Then each trial ran in its own child, which found torch and the engine imported only
    # when the worker preloaded them
    assert result.returncode == 0, result.stderr
    metrics = [f["metrics"] for t in store.trials(sweep_id) for f in t.folds.values()]
    assert len({m["pid"] for m in metrics}) == 2
    assert {m["preloaded"] for m in metrics} == {1.0 if preload else 0.0}


def test_the_supervisor_restarts_a_crashed_worker(tmp_path, redis_server, store, start_workers):
    # Given a supervised worker
    workers = start_workers("--cpu", "1")
    celery_pid = wait_for(lambda: _children(workers.process.pid), 30)[0]

    # When its process is killed
    os.kill(celery_pid, signal.SIGKILL)

    # Then the supervisor says so, starts a new one, and sweeps still run
    wait_for(lambda: "cpu0@" in workers.logs() and "restarting" in workers.logs(), 30)
    new = wait_for(lambda: [p for p in _children(workers.process.pid) if p != celery_pid], 30)
    assert new
    config = write_config(tmp_path / "s.yaml", n_trials=2)
    _, result = submit_and_wait(config, redis_server.url, tmp_path / "a")
    assert result.returncode == 0, result.stderr


def test_sigterm_stops_every_worker_process(tmp_path, redis_server, start_workers):
    workers = start_workers("--cpu", "2")
    wait_for(lambda: len(_children(workers.process.pid)) == 2, 30)
    # the pool children are up once each worker logs that it is ready
    wait_for(lambda: workers.logs().count("ready") >= 2, 60)
    pgid = workers.process.pid

    assert workers.stop() == 0

    assert _processes_in_group(pgid) == []
    assert "all workers stopped" in workers.logs()


def test_workers_without_a_broker_exit_2(tmp_path):
    result = run_cli("workers", "start", "--cpu", "1")
    assert result.returncode == 2
    assert "no broker" in result.stderr


def test_workers_with_an_unreachable_broker_exit_3(tmp_path):
    result = run_cli("workers", "start", "--cpu", "1", "--broker", "redis://:hunter2@127.0.0.1:1/0")
    assert result.returncode == 3
    assert "unreachable" in result.stderr and "hunter2" not in result.stderr


def test_workers_with_a_malformed_broker_url_exit_2():
    result = run_cli("workers", "start", "--cpu", "1", "--broker", "notaurl")
    assert result.returncode == 2, result.stderr
    assert "--broker" in result.stderr and "Traceback" not in result.stderr


def test_worker_logs_are_named_after_the_workers(tmp_path, redis_server, start_workers):
    # Given two CPU workers on host "node" writing to --logfile-dir
    workers = start_workers("--cpu", "2", "--hostname", "node")
    # Then each writes DIR/<worker name>.log, as the help says
    wait_for(lambda: workers.logs().count("ready") >= 2, 60)
    assert sorted(p.name for p in workers.log_dir.glob("*.log")) == [
        "cpu0@node.log",
        "cpu1@node.log",
    ]


def test_a_bad_loglevel_is_refused_before_any_worker_starts():
    result = run_cli(
        "workers", "start", "--cpu", "1", "--loglevel", "loud", "--broker", "redis://h"
    )
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "workers: error: --loglevel: must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL, "
        "got 'LOUD'"
    )


def test_workers_help_is_plain_text():
    result = run_cli("workers", "--help")
    assert result.returncode == 0
    assert "``" not in result.stdout and ":mod:" not in result.stdout
    assert "The workers command: one supervised Celery worker per device" in result.stdout
