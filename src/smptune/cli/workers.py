"""The ``workers`` command: one supervised Celery worker per device on this machine.

Each worker is a separate ``celery worker`` process pinned to one device with
``CUDA_VISIBLE_DEVICES``, concurrency 1, prefork, events on, named ``gpu<N>@<host>`` or
``cpu<N>@<host>`` (``gpu<N>-<slot>@<host>`` with several slots per device). Each gets its
share of the machine's cores, pinned, with its math libraries' threads set to it, and with
several slots its share of the device's memory (see :mod:`smptune.worker.host_share`). The
supervisor restarts a worker that dies and, on SIGTERM/SIGINT, asks each for a warm shutdown, then a
cold one, then kills what is left.

Preemptible machines (``--preemptible``, ``--preempt-grace S``): SIGTERM is a preemption
notice. Each running trial saves a checkpoint at its next epoch (or run) boundary and is
queued again at once for another machine; whatever still runs when the grace ends is killed
and given back the same way. Neither counts as one of the trial's attempts.

GPU memory between trials: each worker keeps one long-lived pool child (imports, data and
CUDA context stay warm); after every task the child runs ``gc.collect()`` and
``torch.cuda.empty_cache()`` (see ``smptune.worker.tasks``), and Celery replaces the child once its
resident memory passes ``--max-memory-per-child``. ``--max-tasks-per-child 1`` gives a fresh
process per trial at a cost of several seconds per trial.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from types import FrameType
from typing import TYPE_CHECKING

from smptune.cli.common import add_common_options, add_verbose_to_commands, complete, plain
from smptune.errors import ConfigError, ExitCode, SmptuneError
from smptune.lifecycle import crash_point
from smptune.messages import DEFAULT_QUEUE
from smptune.queue.lease import lease_ttl_s
from smptune.retries import (
    DEFAULT_PREEMPT_GRACE_S,
    MAX_QUICK_EXITS,
    QUICK_EXIT_S,
    reaper_graces,
    restart_backoff_s,
)
from smptune.trainable import ALLOWED_TRAINABLES_ENV, PRELOAD_ENV, PRELOAD_MODULES
from smptune.urls import BROKER_ENV, broker_url_from, check_broker_url, mask_url
from smptune.worker.host_share import (
    CPUS_ENV,
    MEMORY_FRACTION_ENV,
    CpuShare,
    available_cpus,
    describe_share,
    gpu_local_cpus,
    share_cpus,
    share_env,
)

if TYPE_CHECKING:
    from smptune.queue.recovery import Reaper
    from smptune.queue.store import SweepStore

log = logging.getLogger("smptune.cli.workers")

#: Celery's log levels (``--loglevel``).
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def visible_gpus() -> list[str]:
    """GPU indices this machine shows (``CUDA_VISIBLE_DEVICES`` first, else nvidia-smi)."""
    env = os.environ.get("CUDA_VISIBLE_DEVICES")
    if env is not None:
        return [d.strip() for d in env.split(",") if d.strip() and d.strip() != "-1"]
    smi = shutil.which("nvidia-smi")
    if smi is None:
        return []
    try:
        out = subprocess.run([smi, "-L"], capture_output=True, text=True, timeout=10).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    return [str(i) for i, line in enumerate(out.splitlines()) if line.startswith("GPU ")]


@dataclass
class WorkerSpec:
    """One worker process: its name, the device it sees, its cores, its command line."""

    name: str
    cuda_visible_devices: str
    argv: list[str]
    env: dict[str, str]
    cpus: CpuShare | None = None

    @property
    def share_text(self) -> str:
        """What the start log says of the worker's share of the machine."""
        share = describe_share(self.env) or "every core"
        return f"CUDA_VISIBLE_DEVICES={self.cuda_visible_devices!r}, {share}"


@dataclass
class Preemption:
    """How a preemptible machine's supervisor gives its trials back on SIGTERM."""

    store: SweepStore
    app: object
    grace_s: float = DEFAULT_PREEMPT_GRACE_S

    def notify(self, workers: list[str]) -> None:
        """Ask the trials ``workers`` run to checkpoint and queue themselves again."""
        self.store.preempt(workers, hold_s=self.grace_s + 60)

    def release(self, workers: list[str]) -> list[tuple[str, int]]:
        """Record the trials ``workers`` still run as given back (uncounted), before their
        cold shutdown puts their messages back in the queue."""
        from smptune.queue.recovery import give_back

        given = [
            (sweep_id, trial)
            for sweep_id, trial, worker in self.store.running_on(workers)
            if give_back(self.store, self.app, sweep_id, trial, worker, send=False)
        ]
        if given:
            crash_point("supervisor.given_back")
        return given

    def put_back(self, trials: list[tuple[str, int]]) -> None:
        """``trials``' workers stopped in time: Celery put their messages back."""
        for sweep_id, trial in trials:
            self.store.sent_again(sweep_id, trial)

    def send(self, trials: list[tuple[str, int]]) -> None:
        """Queue ``trials`` again ourselves: their workers were killed before Celery could."""
        from smptune.queue.recovery import send_again

        for sweep_id, trial in trials:
            send_again(self.store, self.app, sweep_id, trial, "given back by its supervisor")

    def done(self, workers: list[str]) -> None:
        self.store.preempted(workers)


@dataclass
class Supervised:
    spec: WorkerSpec
    process: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    restarts: int = 0
    backoff_s: float = 1.0
    next_start: float = 0.0
    exits: list[int] = field(default_factory=list)
    #: exits in a row, each soon after its start (see :data:`MAX_QUICK_EXITS`)
    quick_exits: int = 0
    given_up: bool = False


def _devices(args: argparse.Namespace) -> list[tuple[str, str, str]]:
    """``(kind, label, CUDA_VISIBLE_DEVICES)`` of each worker: ``--slots-per-device`` per GPU."""
    if args.cpu is not None:
        return [("cpu", str(i), "") for i in range(args.cpu)]
    gpus = args.devices if args.devices else visible_gpus()
    if not gpus:
        return [("cpu", "0", "")]
    slots = args.slots_per_device
    return [("gpu", d if slots == 1 else f"{d}-{slot}", d) for d in gpus for slot in range(slots)]


def _shares(args: argparse.Namespace, devices: list[tuple[str, str, str]]) -> list[CpuShare | None]:
    """Each worker's cores: an equal share of this process's (``--cpus-per-worker`` to say
    how many), those near its GPU first; ``all``: every worker on every core."""
    if args.cpus_per_worker == "all":
        return [None] * len(devices)
    per_worker = None if args.cpus_per_worker == "auto" else int(args.cpus_per_worker)
    gpus = dict.fromkeys(cuda for kind, _, cuda in devices if kind == "gpu")  # once per GPU
    near = {cuda: gpu_local_cpus(cuda) for cuda in gpus}
    local = [near.get(cuda) if kind == "gpu" else None for kind, _, cuda in devices]
    return list(share_cpus(available_cpus(), len(devices), per_worker, local))


def worker_specs(args: argparse.Namespace, broker_url: str) -> list[WorkerSpec]:
    host = args.hostname or socket.gethostname()
    devices = _devices(args)
    shares = _shares(args, devices)
    slots = args.slots_per_device
    fraction = 1.0 / slots if slots > 1 else None
    specs = []
    for (kind, index, cuda), share in zip(devices, shares, strict=True):
        name = f"{kind}{index}@{host}"
        argv = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "smptune.worker.app",
            "worker",
            "--hostname",
            name,
            "--concurrency",
            "1",
            "--pool",
            "prefork",
            "--events",
            "--queues",
            args.queues,
            "--prefetch-multiplier",
            "1",
            "--loglevel",
            args.loglevel,
            "--without-gossip",
            "--without-mingle",
        ]
        if args.max_tasks_per_child:
            argv += ["--max-tasks-per-child", str(args.max_tasks_per_child)]
        if args.max_memory_per_child:
            argv += ["--max-memory-per-child", str(args.max_memory_per_child * 1024)]
        if args.logfile_dir:
            argv += ["--logfile", os.path.join(args.logfile_dir, f"{name}.log")]
        env = {k: v for k, v in os.environ.items() if k not in (CPUS_ENV, MEMORY_FRACTION_ENV)}
        env.update(
            {
                "CUDA_VISIBLE_DEVICES": cuda,
                BROKER_ENV: broker_url,
                ALLOWED_TRAINABLES_ENV: ",".join(args.allow_trainable),
                "SMPTUNE_WORKER_NAME": name,
            }
        )
        env.update(share_env(share, fraction if kind == "gpu" else None))
        if args.preload if args.preload is not None else kind == "gpu":
            env[PRELOAD_ENV] = PRELOAD_MODULES
        else:
            env.pop(PRELOAD_ENV, None)
        specs.append(WorkerSpec(name, cuda, argv, env, share))
    return specs


class Supervisor:
    """Keeps one process per :class:`WorkerSpec` alive until asked to stop."""

    def __init__(
        self,
        specs: list[WorkerSpec],
        shutdown_timeout_s: float,
        reaper: Reaper | None = None,
        preemption: Preemption | None = None,
    ) -> None:
        self.workers = [Supervised(spec) for spec in specs]
        self.shutdown_timeout_s = shutdown_timeout_s
        self.stopping = False
        self.stop_signal: int | None = None
        self.reaper = reaper
        self.preemption = preemption
        self.reap_interval_s = max(1.0, lease_ttl_s() / 6)
        self._next_reap = 0.0

    def _reap(self, now: float) -> None:
        if self.reaper is None or now < self._next_reap:
            return
        self._next_reap = now + self.reap_interval_s
        try:
            self.reaper.scan(now)
        except Exception as exc:  # Redis away or a bad record: the next pass tries again
            log.warning("reaper pass failed: %s", exc)

    def _start(self, w: Supervised) -> None:
        cpus = w.spec.cpus
        pin = None if cpus is None else lambda: os.sched_setaffinity(0, cpus.cpus)
        w.process = subprocess.Popen(w.spec.argv, env=w.spec.env, preexec_fn=pin)
        w.started = time.monotonic()
        log.info("started %s (pid %d, %s)", w.spec.name, w.process.pid, w.spec.share_text)

    def request_stop(self, signum: int, _frame: FrameType | None = None) -> None:
        if self.stopping:
            log.warning("second signal: cold shutdown")
            self._signal_all(signal.SIGQUIT)
            return
        log.info("received %s: shutting the workers down", signal.Signals(signum).name)
        self.stopping = True
        self.stop_signal = signum

    def _signal_all(self, sig: int) -> None:
        for w in self.workers:
            if w.process is not None and w.process.poll() is None:
                w.process.send_signal(sig)

    def _wait_all(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(w.process is None or w.process.poll() is not None for w in self.workers):
                return True
            time.sleep(0.1)
        return False

    def run(self) -> int:
        for w in self.workers:
            self._start(w)
        while not self.stopping:
            now = time.monotonic()
            for w in self.workers:
                if w.given_up:
                    continue
                if w.process is None:
                    if now >= w.next_start:
                        self._start(w)
                    continue
                code = w.process.poll()
                if code is None:
                    if now - w.started > 60:
                        w.backoff_s = 1.0
                    continue
                w.exits.append(code)
                w.process = None
                w.quick_exits = w.quick_exits + 1 if now - w.started < QUICK_EXIT_S else 1
                if w.quick_exits >= MAX_QUICK_EXITS:
                    w.given_up = True
                    log.error(
                        "%s exited %d times in a row within %.0f s of starting (exit codes %s): "
                        "not starting it again; its output above says why",
                        w.spec.name,
                        w.quick_exits,
                        QUICK_EXIT_S,
                        ", ".join(map(str, w.exits[-w.quick_exits :])),
                    )
                    continue
                w.restarts += 1
                w.next_start = now + w.backoff_s
                log.warning(
                    "%s exited with code %s; restarting in %.0f s", w.spec.name, code, w.backoff_s
                )
                w.backoff_s = restart_backoff_s(w.backoff_s)
            if all(w.given_up for w in self.workers):
                log.error("every worker keeps exiting at start: the supervisor stops")
                return ExitCode.FAILURE
            self._reap(now)
            time.sleep(0.2)
        if self.preemption is not None and self.stop_signal == signal.SIGTERM:
            return self._preempted(self.preemption)
        self._signal_all(signal.SIGTERM)
        if not self._wait_all(self.shutdown_timeout_s):
            log.warning("workers still busy after %.0f s: cold shutdown", self.shutdown_timeout_s)
            self._signal_all(signal.SIGQUIT)
            if not self._wait_all(10.0):
                self._signal_all(signal.SIGKILL)
                self._wait_all(5.0)
        log.info("all workers stopped")
        return ExitCode.OK

    def _preempted(self, preemption: Preemption) -> int:
        """The machine is going away: trials checkpoint and give themselves back within the
        grace; the rest are killed and given back."""
        names = [w.spec.name for w in self.workers]
        started = time.monotonic()
        log.warning(
            "preempted: trials checkpoint and go back to the queue (%.0f s grace)",
            preemption.grace_s,
        )
        preemption.notify(names)
        self._signal_all(signal.SIGTERM)  # warm: no new trial starts here
        given: list[tuple[str, int]] = []
        if not self._wait_all(max(0.0, preemption.grace_s - 1.0)):
            log.warning("grace spent: cold shutdown of the workers that still train")
            given = preemption.release(names)
            self._signal_all(signal.SIGQUIT)  # Celery puts their messages back as it stops
            if self._wait_all(3.0):
                preemption.put_back(given)
            else:
                self._signal_all(signal.SIGKILL)
                self._wait_all(5.0)
                preemption.send(given)
        preemption.done(names)
        for sweep_id, trial in given:
            log.warning("sweep %s trial %d: queued again", sweep_id, trial)
        log.info(
            "all workers stopped after %.1f s; %d trial(s) given back by the supervisor",
            time.monotonic() - started,
            len(given),
        )
        return ExitCode.OK


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workers",
        description=plain(__doc__.split("\n\n")[0]),
        epilog=plain(__doc__.split("\n\n", 1)[1]),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_common_options(parser, "workers")
    sub = parser.add_subparsers(dest="command", required=True)
    start = sub.add_parser(
        "start",
        help="start one supervised Celery worker per device",
        description="Start one supervised Celery worker per device (every visible GPU, or "
        "--cpu N CPU workers) and keep them running until SIGTERM or Ctrl-C.",
    )
    where = start.add_mutually_exclusive_group()
    where.add_argument(
        "--devices",
        nargs="+",
        metavar="N",
        help="GPU indices, one worker each (default: every visible GPU)",
    )
    where.add_argument("--cpu", type=int, metavar="N", help="N CPU workers instead of GPUs")
    start.add_argument(
        "--slots-per-device",
        type=int,
        default=1,
        metavar="N",
        help="N workers per GPU, each with 1/N of its memory (default: 1)",
    )
    start.add_argument(
        "--cpus-per-worker",
        default="auto",
        metavar="N|auto|all",
        help="cores pinned to each worker, its math libraries' threads (default: auto, an "
        "equal share of the cores this process may use; all: every worker on every core)",
    )
    start.add_argument("--broker", help=f"Redis URL (default: ${BROKER_ENV})")
    start.add_argument("--queues", default=DEFAULT_QUEUE, help="queues to consume (comma list)")
    start.add_argument(
        "--allow-trainable",
        action="append",
        default=[],
        metavar="MOD:OBJ",
        help="also run this trainable (repeatable); built-ins always run",
    )
    start.add_argument("--hostname", help="host part of worker names (default: this host)")
    start.add_argument(
        "--preload",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="import torch, Lightning and smp in each worker before it forks its pool child, "
        "so a fresh child starts training in about a second (default: on for GPU workers)",
    )
    start.add_argument(
        "--loglevel",
        default="INFO",
        type=str.upper,
        metavar="LEVEL",
        help="INFO (default): a line per trial start, run end and trial end with sweep id, "
        "trial, fold, score and duration; WARNING: problems only; also DEBUG, ERROR, CRITICAL",
    )
    start.add_argument(
        "--logfile-dir",
        metavar="DIR",
        help="write each worker's log to DIR/<worker name>.log, e.g. DIR/gpu0@host.log",
    )
    start.add_argument(
        "--max-tasks-per-child",
        type=int,
        default=0,
        help="replace the pool child after N tasks (default: never)",
    )
    start.add_argument(
        "--max-memory-per-child",
        type=int,
        default=16384,
        metavar="MiB",
        help="replace the pool child once its resident memory passes this",
    )
    start.add_argument(
        "--preemptible",
        action="store_true",
        help="SIGTERM is a preemption notice: running trials save a checkpoint at their next "
        "epoch boundary and are queued again at once for other machines, without counting "
        "an attempt; what still runs when the grace ends is killed and queued again",
    )
    start.add_argument(
        "--preempt-grace",
        type=float,
        default=None,
        metavar="S",
        help=f"seconds between a preemption notice and the machine going away (default: "
        f"{DEFAULT_PREEMPT_GRACE_S:.0f}; implies --preemptible)",
    )
    start.add_argument(
        "--shutdown-timeout",
        type=float,
        default=60.0,
        metavar="S",
        help="seconds a running trial may finish in on shutdown",
    )
    add_verbose_to_commands(sub)
    return parser


def _check_sharing(args: argparse.Namespace) -> None:
    """``--slots-per-device`` and ``--cpus-per-worker`` make sense on this machine."""
    if args.slots_per_device < 1:
        raise ConfigError(f"--slots-per-device: must be >= 1, got {args.slots_per_device}")
    if args.slots_per_device > 1 and args.cpu is not None:
        raise ConfigError("--slots-per-device: only for GPU workers, not with --cpu")
    value = str(args.cpus_per_worker).strip().lower()
    if value in ("auto", "all"):
        args.cpus_per_worker = value
        return
    cores = len(available_cpus())
    if not value.isdigit() or int(value) < 1:
        raise ConfigError(f"--cpus-per-worker: must be auto, all or a count >= 1, got {value!r}")
    if int(value) > cores:
        raise ConfigError(
            f"--cpus-per-worker: {value} is more than the {cores} cores this process may use"
        )
    args.cpus_per_worker = int(value)


def start(args: argparse.Namespace) -> int:
    broker_url = broker_url_from(args.broker)
    if broker_url is None:
        raise ConfigError(f"no broker: pass --broker URL or set {BROKER_ENV}")
    check_broker_url(broker_url, "--broker" if args.broker else BROKER_ENV)
    if args.cpu is not None and args.cpu < 1:
        raise ConfigError(f"--cpu: must be >= 1, got {args.cpu}")
    if args.loglevel not in LOG_LEVELS:
        raise ConfigError(
            f"--loglevel: must be one of {', '.join(LOG_LEVELS)}, got {args.loglevel!r}"
        )
    if args.preempt_grace is not None and not 0 < args.preempt_grace <= 3600:
        raise ConfigError(
            f"--preempt-grace: must be more than 0 and at most 3600 seconds, got "
            f"{args.preempt_grace:g}"
        )
    _check_sharing(args)
    from smptune.queue.recovery import Reaper
    from smptune.queue.store import SweepStore
    from smptune.worker.app import configure, create_app

    store = SweepStore.from_url(broker_url)
    app = create_app()
    configure(app, broker_url, send_only=True)
    specs = worker_specs(args, broker_url)
    grace_s, finalize_grace_s = reaper_graces(lease_ttl_s())
    reaper = Reaper(store, app, grace_s=grace_s, finalize_grace_s=finalize_grace_s)
    preemption = None
    if args.preemptible or args.preempt_grace is not None:
        grace = DEFAULT_PREEMPT_GRACE_S if args.preempt_grace is None else args.preempt_grace
        preemption = Preemption(store, app, grace)
    supervisor = Supervisor(specs, args.shutdown_timeout, reaper, preemption)
    signal.signal(signal.SIGTERM, supervisor.request_stop)
    signal.signal(signal.SIGINT, supervisor.request_stop)
    log.info(
        "%d worker(s) on %s: %s", len(specs), mask_url(broker_url), ", ".join(s.name for s in specs)
    )
    return supervisor.run()


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    parser = build_parser()
    complete(parser)
    args = parser.parse_args(argv)
    try:
        return start(args)
    except SmptuneError as exc:
        if args.verbose:
            log.exception("failed")
        print(f"workers: error: {exc}", file=sys.stderr)
        return int(exc.exit_code)


if __name__ == "__main__":
    sys.exit(main())
