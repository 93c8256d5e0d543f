"""``producer submit``: validate a config, record the sweep, queue its trials (or run it
locally), and with ``--wait`` follow it to its end."""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from smptune.cli import broker, output
from smptune.cli.common import Subparsers
from smptune.errors import ConfigError, ExitCode

if TYPE_CHECKING:
    from smptune.params import Params

DEFAULT_ARTIFACTS = "smptune-results"


def add_parser(sub: Subparsers) -> None:
    submit = broker.add_option(
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


def run(args: argparse.Namespace) -> int:
    from smptune.config import load_config
    from smptune.queue.submit import plan_configurations

    if args.local_workers is not None and args.local_workers < 1:
        raise ConfigError(f"--local-workers: must be >= 1, got {args.local_workers}")
    config = load_config(args.config)
    configurations = plan_configurations(config)
    if args.dry_run:
        _print_dry_run(config, configurations)
        return ExitCode.OK
    url = broker.url(args)
    if url is None:
        return _submit_local(args, config, configurations)
    from smptune.queue.store import SweepStore

    store = SweepStore.from_url(url)
    return _submit_and_maybe_wait(args, store, url, config, configurations, wait=args.wait)


def _print_dry_run(config: Any, configurations: list[Params]) -> None:
    """JSON lines on stdout: a configuration per trial, or, where the sampler chooses them at
    run time, a hyperparameter and its distribution per line; what that means on stderr."""
    if config.is_open_ended or config.is_adaptive:
        if config.is_open_ended:
            why = (
                f"no n_trials: trials start until the time budget ({config.time_budget}) is "
                f"spent, each configuration chosen by the {config.sampler} sampler"
            )
        else:
            why = f"sampler {config.sampler}: the {config.n_trials} configurations are chosen"
        print(
            f"{why} at run time, when each trial starts; printing the search space instead",
            file=sys.stderr,
        )
        for name, dist in config.hyperparameters.items():
            print(json.dumps({"hyperparameter": name, "distribution": dist.to_dict()}))
    for n, params in enumerate(configurations):
        print(json.dumps({"trial": n, "params": params}))


def _submit_and_maybe_wait(
    args: argparse.Namespace,
    store: Any,
    url: str,
    config: Any,
    configurations: list[Any],
    wait: bool,
) -> int:
    from smptune.queue.submit import submit
    from smptune.results.progress import wait as wait_for
    from smptune.worker.app import app, configure

    configure(app, url, send_only=True)
    sweep_id = submit(store, config, configurations, args.artifacts, app)
    console = output.console()
    print(sweep_id, flush=True)
    if not wait:
        return ExitCode.OK
    snap = wait_for(store, sweep_id, console)
    return output.print_outcome(console, store, sweep_id, snap)


def _submit_local(args: argparse.Namespace, config: Any, configurations: list[Any]) -> int:
    from smptune.queue.store import SweepStore
    from smptune.worker.local_fleet import LocalCluster

    log_dir = args.artifacts / "logs" / time.strftime("%Y%m%d-%H%M%S")
    print(f"local mode: embedded Redis and local workers (logs in {log_dir})", file=sys.stderr)
    with LocalCluster(log_dir, args.local_workers, config.trainable) as cluster:
        store = SweepStore.from_url(cluster.url)
        return _submit_and_maybe_wait(args, store, cluster.url, config, configurations, wait=True)
