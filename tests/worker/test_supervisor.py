"""The supervisor of a machine's workers: the processes it starts for which options, and
how it treats a worker that keeps exiting at start (no broker, no Celery: stand-in
processes)."""

from __future__ import annotations

import signal
import sys

from smptune.messages import DEFAULT_QUEUE
from smptune.trainable import PRELOAD_ENV
from smptune.urls import BROKER_ENV
from smptune.worker.host_share import MEMORY_FRACTION_ENV
from smptune.worker.supervisor import WorkerOptions, worker_specs

from conftest import wait_for

BROKER = "redis://127.0.0.1:1/0"


def test_cpu_workers_are_named_after_the_host_and_run_one_celery_worker_each():
    options = WorkerOptions(cpu=2, hostname="node", cpus_per_worker="all", logfile_dir="/logs")
    specs = worker_specs(options, BROKER)
    assert [s.name for s in specs] == ["cpu0@node", "cpu1@node"]
    first = specs[0]
    assert first.argv[:6] == [sys.executable, "-m", "celery", "-A", "smptune.worker.app", "worker"]
    assert first.argv[first.argv.index("--hostname") + 1] == "cpu0@node"
    assert first.argv[first.argv.index("--queues") + 1] == DEFAULT_QUEUE
    assert first.argv[first.argv.index("--max-memory-per-child") + 1] == str(16384 * 1024)
    assert first.argv[first.argv.index("--logfile") + 1] == "/logs/cpu0@node.log"
    assert "--max-tasks-per-child" not in first.argv
    assert first.cuda_visible_devices == "" and first.env["CUDA_VISIBLE_DEVICES"] == ""
    assert first.env[BROKER_ENV] == BROKER and first.env["SMPTUNE_WORKER_NAME"] == "cpu0@node"
    assert PRELOAD_ENV not in first.env  # CPU workers do not preload by default
    assert first.cpus is None  # cpus_per_worker all: every core


def test_slots_share_each_gpu_and_its_memory():
    options = WorkerOptions(devices=("0", "1"), slots_per_device=2, hostname="h")
    specs = worker_specs(options, BROKER)
    assert [s.name for s in specs] == ["gpu0-0@h", "gpu0-1@h", "gpu1-0@h", "gpu1-1@h"]
    assert [s.cuda_visible_devices for s in specs] == ["0", "0", "1", "1"]
    assert all(float(s.env[MEMORY_FRACTION_ENV]) == 0.5 for s in specs)
    assert all(PRELOAD_ENV in s.env for s in specs)  # GPU workers preload by default
    no_preload = worker_specs(WorkerOptions(devices=("0",), preload=False), BROKER)
    assert PRELOAD_ENV not in no_preload[0].env


def test_a_worker_that_keeps_exiting_at_start_is_reported_and_not_started_forever(caplog):
    # Given a supervised "worker" whose process exits with code 3 as soon as it starts (as a
    # broken install or a bad option would), and one that keeps running
    import subprocess
    import sys
    import threading

    from smptune.retries import MAX_QUICK_EXITS
    from smptune.worker.supervisor import Supervisor, WorkerSpec

    crashing = WorkerSpec("cpu0@x", "", [sys.executable, "-c", "raise SystemExit(3)"], {})
    sleeper = WorkerSpec("cpu1@x", "", [sys.executable, "-c", "import time; time.sleep(60)"], {})
    supervisor = Supervisor([crashing, sleeper], shutdown_timeout_s=5)
    done: list[int] = []
    thread = threading.Thread(target=lambda: done.append(supervisor.run()), daemon=True)
    with caplog.at_level("INFO", logger="smptune.cli.workers"):
        thread.start()
        # Then it is started MAX_QUICK_EXITS times, reported with its exit codes, and left
        wait_for(lambda: "not starting it again" in caplog.text, 60)
        broken, alive = supervisor.workers
        assert broken.given_up and broken.exits == [3] * MAX_QUICK_EXITS
        assert f"cpu0@x exited {MAX_QUICK_EXITS} times in a row" in caplog.text
        assert "exit codes 3, 3, 3, 3, 3" in caplog.text
        # while the healthy worker runs on
        assert isinstance(alive.process, subprocess.Popen) and alive.process.poll() is None
        supervisor.request_stop(signal.SIGTERM)
        thread.join(30)
    assert done == [0]


def test_the_supervisor_exits_1_once_every_worker_keeps_exiting(caplog):
    import sys

    from smptune.worker.supervisor import Supervisor, WorkerSpec

    spec = WorkerSpec("cpu0@x", "", [sys.executable, "-c", "raise SystemExit(3)"], {})
    with caplog.at_level("INFO", logger="smptune.cli.workers"):
        assert Supervisor([spec], shutdown_timeout_s=5).run() == 1
    assert "every worker keeps exiting at start" in caplog.text
