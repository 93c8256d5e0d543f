"""The ``workers`` command: one supervised Celery worker per device on this machine.

Each worker is a separate ``celery worker`` process pinned to one device with
``CUDA_VISIBLE_DEVICES``, concurrency 1, prefork, events on, named ``gpu<N>@<host>`` or
``cpu<N>@<host>`` (``gpu<N>-<slot>@<host>`` with several slots per device). Each gets its
share of the machine's cores, pinned, with its math libraries' threads set to it, and with
several slots its share of the device's memory (see :mod:`smptune.worker.host_share`).
``--devices-per-worker N`` gives each worker N devices (N GPUs, or N processes' worth of its
cores on CPU) for trials that train each fold with DDP (``training.devices_per_trial``). The
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
import signal
import sys

from smptune.cli.common import add_common_options, add_verbose_to_commands, complete, plain
from smptune.errors import ConfigError, SmptuneError
from smptune.messages import DEFAULT_QUEUE
from smptune.queue.lease import lease_ttl_s
from smptune.requirements import parse_tags
from smptune.retries import DEFAULT_PREEMPT_GRACE_S, reaper_graces
from smptune.urls import BROKER_ENV, broker_url_from, check_broker_url, mask_url
from smptune.worker.host_share import available_cpus
from smptune.worker.supervisor import (
    Preemption,
    Supervisor,
    WorkerOptions,
    worker_specs,
)

log = logging.getLogger("smptune.cli.workers")

#: Celery's log levels (``--loglevel``).
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


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
        "--devices-per-worker",
        type=int,
        default=1,
        metavar="N",
        help="N devices per worker, for trials with training.devices_per_trial up to N "
        "(DDP): N GPUs each (gpu0+1@host sees 0,1), or with --cpu N processes each "
        "(default: 1)",
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
    start.add_argument(
        "--tag",
        action="append",
        default=[],
        metavar="TAG",
        help="a capability these workers advertise (repeatable); trials whose config "
        "requires it run only on workers with it",
    )
    start.add_argument(
        "--gpu-memory-gb",
        type=float,
        metavar="GB",
        help="the GPU memory each worker advertises (default: its GPU's, as nvidia-smi "
        "reports it, shared by its slots; none on CPU)",
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
    if args.devices_per_worker < 1:
        raise ConfigError(f"--devices-per-worker: must be >= 1, got {args.devices_per_worker}")
    if args.devices_per_worker > 1 and args.slots_per_device > 1:
        raise ConfigError("--devices-per-worker: not with --slots-per-device (one or the other)")
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


def _options(args: argparse.Namespace) -> WorkerOptions:
    """``workers start``'s options, checked, as the supervisor takes them."""
    return WorkerOptions(
        devices=tuple(args.devices) if args.devices else None,
        cpu=args.cpu,
        slots_per_device=args.slots_per_device,
        cpus_per_worker=args.cpus_per_worker,
        queues=args.queues,
        loglevel=args.loglevel,
        hostname=args.hostname,
        max_tasks_per_child=args.max_tasks_per_child,
        max_memory_per_child_mib=args.max_memory_per_child,
        logfile_dir=args.logfile_dir,
        allow_trainable=tuple(args.allow_trainable),
        preload=args.preload,
        devices_per_worker=args.devices_per_worker,
        tags=tuple(sorted(parse_tags("--tag", args.tag))),
        gpu_memory_gb=args.gpu_memory_gb,
    )


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
    if args.gpu_memory_gb is not None and not args.gpu_memory_gb > 0:
        raise ConfigError(f"--gpu-memory-gb: must be > 0, got {args.gpu_memory_gb:g}")
    specs = worker_specs(_options(args), broker_url)  # checked before the broker is reached
    from smptune.queue.recovery import Reaper
    from smptune.queue.store import SweepStore
    from smptune.worker.app import configure, create_app

    store = SweepStore.from_url(broker_url)
    app = create_app()
    configure(app, broker_url, send_only=True)
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
