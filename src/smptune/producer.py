"""The ``producer`` command: submit a sweep and read what it produced.

Exit codes: 0 ok, 1 anything else, 2 bad config or usage, 3 broker unreachable.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from smptune.errors import ConfigError, ExitCode, SmptuneError
from smptune.urls import BROKER_ENV, broker_url_from, check_broker_url, mask_secrets

DEFAULT_ARTIFACTS = "smptune-results"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="producer", description="Submit cross-validated sweeps and read their results."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True)

    def with_broker(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument("--broker", help=f"Redis URL (default: ${BROKER_ENV})")
        return p

    submit = with_broker(
        sub.add_parser(
            "submit",
            help="validate a config, record the sweep, queue one chord",
            description="With no --broker and no $SMPTUNE_BROKER_URL the sweep runs locally: an "
            "embedded Redis and this machine's workers are started and stopped again.",
        )
    )
    submit.add_argument("config", type=Path, help="sweep config (YAML or TOML)")
    submit.add_argument(
        "--wait", action="store_true", help="show progress until retrain-and-test has finished"
    )
    submit.add_argument(
        "--dry-run",
        action="store_true",
        help="print the configurations as JSON lines; queue nothing",
    )
    submit.add_argument(
        "--artifacts",
        type=Path,
        default=Path(DEFAULT_ARTIFACTS),
        help=f"results go to DIR/<sweep id>/ (default: ./{DEFAULT_ARTIFACTS})",
    )
    submit.add_argument(
        "--local-workers",
        type=int,
        metavar="N",
        help="local mode: N CPU workers (default: one per GPU, else one)",
    )

    status = with_broker(sub.add_parser("status", help="progress of a sweep"))
    status.add_argument("sweep")
    status.add_argument("--json", action="store_true")

    results = with_broker(sub.add_parser("results", help="ranking and test metrics of a sweep"))
    results.add_argument("sweep")
    results.add_argument("--json", action="store_true")
    results.add_argument("--out", type=Path, help="write the results folder to DIR")

    cancel = with_broker(
        sub.add_parser(
            "cancel",
            help="stop a sweep: queued trials never start, running ones stop at the "
            "next fold boundary, the partial results are written",
        )
    )
    cancel.add_argument("sweep")

    with_broker(sub.add_parser("list", help="the sweeps this broker knows"))
    return parser


def _console() -> Any:
    from rich.console import Console

    console = Console(highlight=False)
    if not console.is_terminal:  # logs and pipes: no wrapping of ids at 80 columns
        console = Console(highlight=False, width=200)
    return console


def _broker_url(args: argparse.Namespace) -> str | None:
    """``--broker``, else ``$SMPTUNE_BROKER_URL``, checked; None for neither (local mode)."""
    url = broker_url_from(args.broker)
    if url is not None:
        check_broker_url(url, "--broker" if args.broker else BROKER_ENV)
    return url


def _store(args: argparse.Namespace) -> Any:
    from smptune.store import SweepStore

    url = _broker_url(args)
    if url is None:
        raise ConfigError(f"no broker: pass --broker URL or set {BROKER_ENV}")
    return SweepStore.from_url(url)


def cmd_submit(args: argparse.Namespace) -> int:
    from smptune.config import load_config
    from smptune.sweep import plan_configurations

    if args.local_workers is not None and args.local_workers < 1:
        raise ConfigError(f"--local-workers: must be >= 1, got {args.local_workers}")
    config = load_config(args.config)
    configurations = plan_configurations(config)
    if args.dry_run:
        for n, params in enumerate(configurations):
            print(json.dumps({"trial": n, "params": params}))
        return ExitCode.OK
    url = _broker_url(args)
    if url is None:
        return _submit_local(args, config, configurations)
    from smptune.store import SweepStore

    store = SweepStore.from_url(url)
    return _submit_and_maybe_wait(args, store, url, config, configurations, wait=args.wait)


def _submit_and_maybe_wait(
    args: argparse.Namespace, store: Any, url: str, config: Any, configurations: list, wait: bool
) -> int:
    from smptune.celeryapp import app, configure
    from smptune.progress import wait as wait_for
    from smptune.sweep import submit

    configure(app, url, send_only=True)
    sweep_id = submit(store, config, configurations, args.artifacts)
    console = _console()
    print(sweep_id, flush=True)
    if not wait:
        return ExitCode.OK
    snap = wait_for(store, sweep_id, console)
    return _print_outcome(console, store, sweep_id, snap)


def _print_outcome(console: Any, store: Any, sweep_id: str, snap: dict[str, Any]) -> int:
    from smptune.progress import ranking_table

    sweep = store.get_sweep(sweep_id)
    if sweep.get("results"):
        console.print(ranking_table(sweep["results"]))
    if sweep.get("test_metrics"):
        metrics = ", ".join(f"{k}={v:.4f}" for k, v in sweep["test_metrics"].items())
        console.print(f"test metrics of the best configuration: {metrics}")
    console.print(f"results: {Path(sweep['artifacts_dir']) / sweep_id}")
    if snap["status"] != "done":
        console.print(f"sweep {sweep_id} ended {snap['status']}: {snap.get('error') or ''}")
        return ExitCode.FAILURE
    return ExitCode.OK


def _submit_local(args: argparse.Namespace, config: Any, configurations: list) -> int:
    from smptune.local import LocalCluster
    from smptune.store import SweepStore

    log_dir = args.artifacts / "logs" / time.strftime("%Y%m%d-%H%M%S")
    print(f"local mode: embedded Redis and local workers (logs in {log_dir})", file=sys.stderr)
    with LocalCluster(log_dir, args.local_workers, config.trainable) as cluster:
        store = SweepStore.from_url(cluster.url)
        return _submit_and_maybe_wait(args, store, cluster.url, config, configurations, wait=True)


def cmd_status(args: argparse.Namespace) -> int:
    from smptune.progress import format_duration, progress_line, snapshot

    snap = snapshot(_store(args), args.sweep)
    if args.json:
        print(json.dumps(snap, indent=2))
        return ExitCode.OK
    console = _console()
    console.print(f"sweep {snap['sweep_id']} ({snap['name']})")
    console.print(progress_line(snap), markup=False)
    for r in snap["running"]:
        running_for = format_duration(time.time() - r["started"]) if r["started"] else "--"
        console.print(f"  {r['worker']}: trial {r['trial']} fold {r['fold']} ({running_for})")
    if snap["test_metrics"]:
        console.print(
            "test metrics: " + ", ".join(f"{k}={v:.4f}" for k, v in snap["test_metrics"].items())
        )
    if snap["error"]:
        console.print(f"error: {snap['error']}")
    return ExitCode.OK


def cmd_results(args: argparse.Namespace) -> int:
    from smptune.progress import ranking_table
    from smptune.report import summarize, write_results

    store = _store(args)
    sweep = store.get_sweep(args.sweep)
    results = sweep.get("results") or summarize(store, args.sweep)
    if args.out:
        write_results(results, sweep["config"], args.out, sweep.get("test_metrics"))
    if args.json:
        print(
            json.dumps(
                {**results, "status": sweep["status"], "test_metrics": sweep.get("test_metrics")},
                indent=2,
                default=str,
            )
        )
        return ExitCode.OK
    console = _console()
    console.print(ranking_table(results, limit=50))
    if sweep.get("test_metrics"):
        console.print(
            "test metrics: " + ", ".join(f"{k}={v:.4f}" for k, v in sweep["test_metrics"].items())
        )
    if args.out:
        console.print(f"results written to {args.out}")
    return ExitCode.OK


def cmd_list(args: argparse.Namespace) -> int:
    from rich.table import Table

    table = Table()
    for column in ("sweep", "name", "status", "created", "trials", "complete", "failed"):
        table.add_column(column, no_wrap=column in ("sweep", "created"))
    for s in _store(args).list_sweeps():
        created = time.strftime("%Y-%m-%d %H:%M", time.localtime(float(s["created"] or 0)))
        table.add_row(
            s["id"],
            s["name"],
            s["status"],
            created,
            s["n_trials"],
            s["trials_complete"],
            s["trials_failed"],
        )
    _console().print(table)
    return ExitCode.OK


def cmd_cancel(args: argparse.Namespace) -> int:
    from smptune.store import TERMINAL_SWEEP_STATES

    store = _store(args)
    status = store.get_sweep(args.sweep)["status"]
    if status in TERMINAL_SWEEP_STATES:
        print(f"sweep {args.sweep} has already ended ({status}); nothing to cancel")
        return ExitCode.OK
    store.request_cancel(args.sweep)
    print(
        f"cancelling sweep {args.sweep}: queued trials will not start, running ones stop "
        "at their next fold boundary, then the partial results are written"
    )
    return ExitCode.OK


COMMANDS = {
    "submit": cmd_submit,
    "status": cmd_status,
    "results": cmd_results,
    "cancel": cmd_cancel,
    "list": cmd_list,
}


def _is_connection_error(exc: BaseException) -> bool:
    """A redis-py or kombu connection failure raised after the first successful PING."""
    from kombu.exceptions import OperationalError
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    return isinstance(exc, OperationalError | RedisConnectionError | RedisTimeoutError)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(COMMANDS[args.command](args))
    except KeyboardInterrupt:
        print("producer: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        url = broker_url_from(getattr(args, "broker", None))
        if args.verbose:
            traceback.print_exc()
        if isinstance(exc, SmptuneError):
            message, code = str(exc), int(exc.exit_code)
        elif _is_connection_error(exc):
            message = f"lost the broker: {type(exc).__name__}: {exc}"
            code = int(ExitCode.BROKER_UNREACHABLE)
        else:
            message, code = f"{type(exc).__name__}: {exc}", int(ExitCode.FAILURE)
        print(f"producer: error: {mask_secrets(message, url)}", file=sys.stderr)
        return code


if __name__ == "__main__":
    sys.exit(main())
