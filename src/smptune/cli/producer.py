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

from smptune.cli.common import add_common_options, add_verbose_to_commands, complete
from smptune.errors import ConfigError, ExitCode, SmptuneError
from smptune.records import FullSweepRecord
from smptune.urls import BROKER_ENV, broker_url_from, check_broker_url, mask_secrets, mask_url

DEFAULT_ARTIFACTS = "smptune-results"
DEFAULT_DASHBOARD_STORAGE = "sqlite:///smptune-optuna.db"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="producer", description="Submit cross-validated sweeps and read their results."
    )
    add_common_options(parser, "producer")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (
        _add_submit,
        _add_status,
        _add_flower,
        _add_results,
        _add_cancel,
        _add_continue,
        _add_cleanup,
        _add_dashboard,
        _add_predict,
    ):
        add(sub)
    listing = _with_broker(sub.add_parser("list", help="the sweeps this broker knows"))
    listing.add_argument("--json", action="store_true", help="the sweeps as a JSON list")
    add_verbose_to_commands(sub)
    return parser


def _with_broker(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--broker", help=f"Redis URL (default: ${BROKER_ENV})")
    return p


def _add_submit(sub: Any) -> None:
    """The ``submit`` command."""
    submit = _with_broker(
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


def _add_status(sub: Any) -> None:
    """The ``status`` command."""
    status = _with_broker(
        sub.add_parser(
            "status",
            help="progress of a sweep: who runs what, trials done, best so far, ETA",
            description="The ETA comes from the measured run (fold) times and the number of "
            "workers busy. With --wait: show progress until the sweep ends; exit 0 if it "
            "ended done, 1 if it failed or was cancelled.",
        )
    )
    status.add_argument("sweep")
    status.add_argument("--json", action="store_true", help="the snapshot as JSON")
    status.add_argument("--wait", action="store_true", help="poll until the sweep ends")


def _add_flower(sub: Any) -> None:
    """The ``flower`` command."""
    flower = _with_broker(
        sub.add_parser(
            "flower",
            help="start Flower (web UI of tasks and workers) on this broker",
            description="Runs `celery --app smptune.worker.app flower`, so Flower loads the "
            "same transport options as the workers. Listening beyond this machine "
            "(--address 0.0.0.0) needs --basic-auth.",
        )
    )
    flower.add_argument("--port", type=int, default=5555, help="default: 5555")
    flower.add_argument("--address", default="127.0.0.1", help="default: 127.0.0.1")
    flower.add_argument(
        "--basic-auth",
        metavar="USER:PASSWORD",
        help="ask for this login (comma-separate several); default: $FLOWER_BASIC_AUTH",
    )


def _add_results(sub: Any) -> None:
    """The ``results`` command."""
    results = _with_broker(sub.add_parser("results", help="ranking and test metrics of a sweep"))
    results.add_argument("sweep")
    results.add_argument("--json", action="store_true")
    results.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="write the results folder (tables, report.html, plots) to DIR",
    )
    results.add_argument(
        "--optuna-storage",
        metavar="URL",
        help="also mirror the sweep into an Optuna study (created, or brought up to date): an "
        "RDB URL (sqlite:///sweeps.db) or a journal file path",
    )
    results.add_argument(
        "--optuna-study", metavar="NAME", help="the Optuna study's name (default: the sweep id)"
    )
    results.add_argument(
        "--follow",
        action="store_true",
        help="keep the Optuna study up to date until the sweep ends (for optuna-dashboard)",
    )
    results.add_argument(
        "--every",
        type=float,
        default=5.0,
        metavar="S",
        help="with --follow: seconds between updates (default: 5)",
    )


def _add_dashboard(sub: Any) -> None:
    """The ``dashboard`` command."""
    dashboard = _with_broker(
        sub.add_parser(
            "dashboard",
            help="optuna-dashboard following a sweep: the sweep is mirrored into an Optuna "
            "study as it runs",
            description="Mirrors the sweep into --optuna-storage every --every seconds until "
            "it ends and runs `optuna-dashboard` (pip install optuna-dashboard) on that "
            "storage; the dashboard stays up after the sweep ends, until Ctrl-C.",
        )
    )
    dashboard.add_argument("sweep")
    dashboard.add_argument(
        "--optuna-storage",
        default=DEFAULT_DASHBOARD_STORAGE,
        metavar="URL",
        help=f"an RDB URL or a journal file path (default: {DEFAULT_DASHBOARD_STORAGE})",
    )
    dashboard.add_argument(
        "--optuna-study", metavar="NAME", help="the study's name (default: the sweep id)"
    )
    dashboard.add_argument("--port", type=int, default=8080, help="default: 8080")
    dashboard.add_argument("--address", default="127.0.0.1", help="default: 127.0.0.1")
    dashboard.add_argument(
        "--every", type=float, default=5.0, metavar="S", help="seconds between updates"
    )


def _add_predict(sub: Any) -> None:
    """The ``predict`` command."""
    from smptune.training.refine import POSTPROCESS, TTA

    predict = sub.add_parser(
        "predict",
        help="masks of new images from a sweep's fold ensemble (or its retrained model)",
        description="Runs the sweep's fold ensemble (RESULTS_DIR/final/ensemble; or, "
        "with --model retrained or without an ensemble, the retrained final/model) on "
        "images of any size, prepared as the sweep prepared its data (scaling, the encoder's "
        "normalisation, the same sliding windows), and writes one mask per image into --out "
        "in the image's format (PNG or NPY of class labels, binary 0/255; TIFF keeping "
        "GeoTIFF tags). Needs no broker.",
    )
    predict.add_argument("results_dir", type=Path, metavar="RESULTS_DIR")
    predict.add_argument("images", nargs="+", type=Path, metavar="IMAGES", help="files or folders")
    predict.add_argument("--out", type=Path, required=True, metavar="DIR", help="masks go here")
    predict.add_argument(
        "--model",
        choices=("ensemble", "retrained"),
        help="ensemble: the best trial's fold models together (the default when the sweep "
        "exported them); retrained: the final model trained on the whole train split",
    )
    predict.add_argument("--device", help="cpu, cuda, cuda:1, ... (default: cuda if present)")
    predict.add_argument("--tta", choices=TTA, default="none", help="test-time augmentation")
    predict.add_argument(
        "--postprocess", choices=POSTPROCESS, default="none", help="post-processing of masks"
    )
    predict.add_argument(
        "--overlap",
        type=float,
        metavar="F",
        help="windows' overlap in [0, 1) (default: the sweep's)",
    )


def _add_cancel(sub: Any) -> None:
    """The ``cancel`` command."""
    cancel = _with_broker(
        sub.add_parser(
            "cancel",
            help="stop a sweep: queued trials never start, running ones stop at the "
            "next epoch boundary, the partial results are written",
        )
    )
    cancel.add_argument("sweep")
    cancel.add_argument("--json", action="store_true", help="what was done, as JSON")


def _add_continue(sub: Any) -> None:
    """The ``resume`` and ``extend`` commands."""
    resume = _with_broker(
        sub.add_parser(
            "resume",
            help="continue an ended sweep: its cancelled, skipped and stopped trials run "
            "again from their first unrecorded fold (or epoch, from a checkpoint); ranked and "
            "finalized again (a sweep whose retrain-and-test failed is retrained); or an "
            "interrupted one: what it lost is queued again at once",
            description="Complete and pruned trials are kept as they are. Retrain-and-test "
            "runs again only if the best trial changed (or it never ran). A sweep that still "
            "says it runs, but that no live worker holds (Redis and every worker were killed), "
            "keeps its chord: its trials that lost their worker or message are sent again.",
        )
    )
    resume.add_argument("sweep")
    resume.add_argument("--retry-failed", action="store_true", help="failed trials too")
    extend = _with_broker(
        sub.add_parser(
            "extend",
            help="N more trials for a sweep, running or ended; the ranking covers them all",
            description="Random search continues its seeded stream without repeating a "
            "configuration; adaptive samplers learn from every earlier trial.",
        )
    )
    extend.add_argument("sweep")
    extend.add_argument("--trials", type=int, required=True, metavar="N")
    extend.add_argument(
        "--allow-trainable",
        action="append",
        default=[],
        metavar="MODULE:OBJECT",
        help="import this trainable named in the sweep's record (beyond the built-ins and "
        "$SMPTUNE_ALLOWED_TRAINABLES), as its workers were told with workers start "
        "--allow-trainable; repeatable",
    )
    for p in (resume, extend):
        p.add_argument(
            "--time-budget",
            metavar="T",
            help="no trial starts after now + T (90m, 2h); default: no budget",
        )
        p.add_argument("--wait", action="store_true", help="show progress until it ends")


def _add_cleanup(sub: Any) -> None:
    """The ``delete`` and ``gc`` commands."""
    delete = _with_broker(
        sub.add_parser(
            "delete",
            help="remove an ended sweep's keys from Redis (its results folder stays)",
            description="With --force, a sweep in any state: it is told to stop (its running "
            "trials stop at their next epoch boundary and record nothing), and its queued "
            "trials are ignored by the workers that take them.",
        )
    )
    delete.add_argument("sweep")
    delete.add_argument(
        "--force", action="store_true", help="stop and remove it even if it has not ended"
    )
    gc = _with_broker(
        sub.add_parser(
            "gc",
            help="remove the keys of sweeps that ended longer ago than --older-than",
            description="Never touches a queued, running or retraining sweep; results "
            "folders stay. Redis runs with noeviction: keys nobody removes stay forever.",
        )
    )
    gc.add_argument(
        "--older-than",
        required=True,
        metavar="AGE",
        help="e.g. 30d, 12h, 90m: sweeps that ended (or were created, if they never ran) "
        "before now - AGE",
    )
    gc.add_argument("--dry-run", action="store_true", help="list them; remove nothing")


def _console(stderr: bool = False) -> Any:
    from rich.console import Console

    console = Console(highlight=False, stderr=stderr)
    if not console.is_terminal:  # logs and pipes: no wrapping of ids at 80 columns
        console = Console(highlight=False, width=200, stderr=stderr)
    return console


def _broker_url(args: argparse.Namespace) -> str | None:
    """``--broker``, else ``$SMPTUNE_BROKER_URL``, checked; None for neither (local mode)."""
    url = broker_url_from(args.broker)
    if url is not None:
        check_broker_url(url, "--broker" if args.broker else BROKER_ENV)
    return url


def _store(args: argparse.Namespace) -> Any:
    from smptune.queue.store import SweepStore

    url = _broker_url(args)
    if url is None:
        raise ConfigError(f"no broker: pass --broker URL or set {BROKER_ENV}")
    return SweepStore.from_url(url)


def cmd_submit(args: argparse.Namespace) -> int:
    from smptune.config import load_config
    from smptune.queue.submit import plan_configurations

    if args.local_workers is not None and args.local_workers < 1:
        raise ConfigError(f"--local-workers: must be >= 1, got {args.local_workers}")
    config = load_config(args.config)
    configurations = plan_configurations(config)
    if args.dry_run:
        _print_dry_run(config, configurations)
        return ExitCode.OK
    url = _broker_url(args)
    if url is None:
        return _submit_local(args, config, configurations)
    from smptune.queue.store import SweepStore

    store = SweepStore.from_url(url)
    return _submit_and_maybe_wait(args, store, url, config, configurations, wait=args.wait)


def _print_dry_run(config: Any, configurations: list[dict[str, Any]]) -> None:
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
    args: argparse.Namespace, store: Any, url: str, config: Any, configurations: list, wait: bool
) -> int:
    from smptune.queue.submit import submit
    from smptune.results.progress import wait as wait_for
    from smptune.worker.app import app, configure

    configure(app, url, send_only=True)
    sweep_id = submit(store, config, configurations, args.artifacts)
    console = _console()
    print(sweep_id, flush=True)
    if not wait:
        return ExitCode.OK
    snap = wait_for(store, sweep_id, console)
    return _print_outcome(console, store, sweep_id, snap)


def _print_final_figures(console: Any, results: Any, test_metrics: Any) -> None:
    from smptune.results.folder import ensemble_metrics
    from smptune.results.labels import metrics_text
    from smptune.results.progress import cv_versus_test_line

    ensemble = ensemble_metrics(results or {})
    if ensemble:
        shown = metrics_text(ensemble, (results or {}).get("class_names"))
        console.print(f"test metrics of its fold ensemble: {shown}", markup=False)
    line = cv_versus_test_line(results or {}, test_metrics)
    if line:
        console.print(line, markup=False)


def _print_outcome(console: Any, store: Any, sweep_id: str, snap: dict[str, Any]) -> int:
    from smptune.results.progress import ranking_table

    sweep = store.get_sweep(sweep_id, full=True)
    if sweep.results:
        console.print(ranking_table(sweep.results))
        if sweep.results.get("no_best"):
            console.print(f"sweep {sweep_id}: {sweep.results['no_best']}", markup=False)
    if sweep.test_metrics:
        from smptune.results.labels import metrics_text

        metrics = metrics_text(sweep.test_metrics, sweep.config.class_names)
        console.print(f"test metrics of the best configuration: {metrics}", markup=False)
        _print_final_figures(console, sweep.results, sweep.test_metrics)
    console.print(f"results: {Path(sweep.artifacts_dir) / sweep_id}")
    if snap["status"] != "done":
        console.print(f"sweep {sweep_id} ended {snap['status']}: {snap.get('error') or ''}")
        return ExitCode.FAILURE
    return ExitCode.OK


def _submit_local(args: argparse.Namespace, config: Any, configurations: list) -> int:
    from smptune.queue.store import SweepStore
    from smptune.worker.local_fleet import LocalCluster

    log_dir = args.artifacts / "logs" / time.strftime("%Y%m%d-%H%M%S")
    print(f"local mode: embedded Redis and local workers (logs in {log_dir})", file=sys.stderr)
    with LocalCluster(log_dir, args.local_workers, config.trainable) as cluster:
        store = SweepStore.from_url(cluster.url)
        return _submit_and_maybe_wait(args, store, cluster.url, config, configurations, wait=True)


def cmd_status(args: argparse.Namespace) -> int:
    from smptune.results.progress import snapshot, status_lines
    from smptune.results.progress import wait as wait_for

    store = _store(args)
    snap = snapshot(store, args.sweep)
    if args.wait:
        snap = wait_for(store, args.sweep, _console(stderr=args.json))
    if args.json:
        print(json.dumps(snap, indent=2))
    else:
        console = _console()
        for line in status_lines(snap):
            console.print(line, markup=False)
    if args.wait and snap["status"] != "done":
        return ExitCode.FAILURE
    return ExitCode.OK


def cmd_flower(args: argparse.Namespace) -> int:
    import os

    from smptune.flower import BASIC_AUTH_ENV, check_options, exec_flower
    from smptune.queue.store import connect

    url = _broker_url(args)
    if url is None:
        raise ConfigError(f"flower: no broker: pass --broker URL or set {BROKER_ENV}")
    basic_auth = args.basic_auth or os.environ.get(BASIC_AUTH_ENV) or None
    check_options(args.port, args.address, basic_auth)
    connect(url).close()  # an unreachable broker: exit 3 now, not a Flower that retries
    login = "with a login" if basic_auth else "without a login"
    print(
        f"Flower on http://{args.address}:{args.port}/ ({login}) for {mask_url(url)}",
        file=sys.stderr,
    )
    exec_flower(url, args.port, args.address, basic_auth)
    return ExitCode.FAILURE  # not reached: exec_flower replaces this process


def cmd_results(args: argparse.Namespace) -> int:
    from smptune.results.folder import summarize, write_results
    from smptune.results.progress import ranking_table

    if args.optuna_study is not None and not args.optuna_storage:
        raise ConfigError("--optuna-study: needs --optuna-storage URL")
    if args.follow and not args.optuna_storage:
        raise ConfigError("--follow: needs --optuna-storage URL")
    _check_every(args.every)
    store = _store(args)
    sweep = store.get_sweep(args.sweep, full=True)
    results = sweep.results or summarize(store, args.sweep)
    exported = None
    if args.optuna_storage is not None:
        from smptune.results.optuna_export import mirror_study

        study = args.optuna_study or args.sweep
        if args.follow:
            return _follow(args, store, study)
        done = mirror_study(results, sweep.config, args.optuna_storage, study)
        where = mask_url(args.optuna_storage)
        exported = (
            f"Optuna study {study!r}: {done.total} trials in {where} ({done.added} added, "
            f"{done.updated} brought up to date)"
        )
        if args.json:
            print(exported, file=sys.stderr)
    if args.out:
        _copy_predictions(sweep, args.out)
        write_results(
            results,
            sweep.config,
            args.out,
            sweep.test_metrics,
            splits=sweep.splits,
        )
    if args.json:
        print(
            json.dumps(
                {**results, "status": sweep.status, "test_metrics": sweep.test_metrics},
                indent=2,
                default=str,
            )
        )
        return ExitCode.OK
    console = _console()
    console.print(ranking_table(results, limit=50))
    if results.get("no_best"):
        console.print(f"sweep {args.sweep}: {results['no_best']}", markup=False)
    if sweep.test_metrics:
        from smptune.results.labels import metrics_text

        shown = metrics_text(sweep.test_metrics, sweep.config.class_names)
        console.print(f"test metrics: {shown}", markup=False)
        _print_final_figures(console, results, sweep.test_metrics)
    if args.out:
        console.print(f"results written to {args.out} (report: {args.out / 'report.html'})")
    if exported:
        console.print(exported, markup=False)
    return ExitCode.OK


def _check_every(every: float) -> None:
    if not 0.1 <= every <= 3600:
        raise ConfigError(f"--every: must be between 0.1 and 3600 seconds, got {every:g}")


def _follow(args: argparse.Namespace, store: Any, study: str, stop: Any = None) -> int:
    """Mirror the sweep into the Optuna study until it ends, a line per change."""
    from smptune.results.optuna_export import follow

    where = mask_url(args.optuna_storage)
    print(
        f"mirroring sweep {args.sweep} into Optuna study {study!r} in {where} every "
        f"{args.every:g} s until it ends (Ctrl-C stops mirroring, not the sweep)",
        file=sys.stderr,
        flush=True,
    )

    def report(done: Any) -> None:
        print(
            f"Optuna study {study!r}: {done.total} trials ({done.running} running; "
            f"{done.added} added, {done.updated} brought up to date)",
            flush=True,
        )

    last = follow(store, args.sweep, args.optuna_storage, study, args.every, report, stop)
    status = store.get_sweep(args.sweep).status
    print(f"sweep {args.sweep} {status.value}: {last.total} trials in the study", flush=True)
    return ExitCode.OK


def _copy_predictions(sweep: FullSweepRecord, out: Path) -> None:
    """Put the final model's sample predictions into ``out/final/`` for the report: from the
    sweep's ``predictions_png`` (base64), else from its final folder when this machine sees it."""
    import base64
    import binascii
    import shutil

    target = out / "final" / "predictions.png"
    source = Path(sweep.final_model_dir or "") / "predictions.png"
    if sweep.predictions_png:
        try:
            data = base64.b64decode(sweep.predictions_png, validate=True)
        except (binascii.Error, ValueError):
            return
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    elif sweep.final_model_dir and source.is_file() and not target.exists():
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(source, target)


def cmd_list(args: argparse.Namespace) -> int:
    from rich.table import Table

    store = _store(args)
    memory = store.memory_by_sweep()
    sweeps = store.list_sweeps()
    if args.json:
        rows = [{**s.to_dict(), "redis_bytes": memory.get(s.id, 0)} for s in sweeps]
        print(json.dumps(rows, indent=2))
        return ExitCode.OK
    table = Table()
    columns = ("sweep", "name", "status", "created", "trials", "complete", "failed", "redis")
    for column in columns:
        table.add_column(column, no_wrap=column in ("sweep", "created"))
    for s in sweeps:
        created = time.strftime("%Y-%m-%d %H:%M", time.localtime(s.created))
        table.add_row(
            s.id,
            s.name,
            s.status.value,
            created,
            str(s.n_trials),
            str(s.trials_complete),
            str(s.trials_failed),
            _bytes(memory.get(s.id, 0)),
        )
    console = _console()
    console.print(table)
    console.print(
        f"{len(memory)} sweeps use {_bytes(sum(memory.values()))} of Redis memory "
        f"(producer gc --older-than AGE removes old ones)"
    )
    return ExitCode.OK


def _bytes(n: int) -> str:
    """``512 B``, ``12.3 MiB``."""
    if n < 1024:
        return f"{n} B"
    size = float(n)
    for unit in ("KiB", "MiB", "GiB"):
        size /= 1024
        if size < 1024 or unit == "GiB":
            break
    return f"{size:.1f} {unit}"


def _continued(args: argparse.Namespace, action: Any) -> int:
    """Resume or extend (``action(store, app, budget)``), then report or wait."""
    from smptune.config import parse_duration
    from smptune.results.progress import wait as wait_for
    from smptune.worker.app import app, configure

    budget = None if args.time_budget is None else parse_duration("--time-budget", args.time_budget)
    store = _store(args)
    url = _broker_url(args)
    assert url is not None
    configure(app, url, send_only=True)
    done = action(store, app, budget)
    if done.interrupted and not done.trials:
        print(f"{args.sweep}: nothing was lost; its queued trials wait for workers")
    elif done.interrupted:
        print(
            f"{args.sweep}: {len(done.trials)} trials that lost their worker or message "
            f"queued again: {_numbers(done.trials)}"
        )
    elif not done.trials:
        print(f"{args.sweep}: every trial has ended; ranking it and retraining the best again")
    else:
        how = "a new chord" if done.new_chord else "the running chord"
        print(f"{args.sweep}: {len(done.trials)} trials queued ({how}): {_numbers(done.trials)}")
    if not args.wait:
        return ExitCode.OK
    console = _console()
    snap = wait_for(store, args.sweep, console)
    return _print_outcome(console, store, args.sweep, snap)


def _numbers(trials: list[int]) -> str:
    shown = ", ".join(map(str, trials[:20]))
    return shown + (f", ... ({len(trials)} in all)" if len(trials) > 20 else "")


def cmd_resume(args: argparse.Namespace) -> int:
    from smptune.queue.resume import resume

    return _continued(
        args,
        lambda store, app, budget: resume(
            store, app, args.sweep, time_budget_s=budget, retry_failed=args.retry_failed
        ),
    )


def cmd_extend(args: argparse.Namespace) -> int:
    from smptune.queue.resume import extend
    from smptune.trainable import BUILTIN_TRAINABLES, allowed_trainables, load_trainable

    def action(store: Any, app: Any, budget: float | None) -> Any:
        config = store.get_sweep(args.sweep).config
        # the trainable is named by the sweep's record in Redis: whoever can write there must
        # not get a module of their choosing imported here
        allowed = [*allowed_trainables(), *args.allow_trainable]
        if config.trainable not in {*BUILTIN_TRAINABLES, *allowed}:
            raise ConfigError(
                f"sweep {args.sweep}: its trainable {config.trainable!r} is not allowed on "
                f"this producer (extend it with --allow-trainable {config.trainable}, as its "
                "workers were started)"
            )
        defaults = dict(load_trainable(config.trainable, allowed=allowed).defaults)
        return extend(store, app, args.sweep, args.trials, defaults=defaults, time_budget_s=budget)

    return _continued(args, action)


def cmd_delete(args: argparse.Namespace) -> int:
    store = _store(args)
    sweep = store.get_sweep(args.sweep)
    live = not sweep.status.terminal and args.force
    told = []  # what runs now, held by a live worker
    if live:
        running = [n for n in store.running_numbers(sweep.id) if store.lease_exists(sweep.id, n)]
        if running:
            told.append(f"{len(running)} running trial{'' if len(running) == 1 else 's'}")
        if store.retrain_held(sweep.id):
            told.append("its retrain-and-test")
    memory = store.memory_by_sweep().get(args.sweep, 0)
    removed = store.delete_sweep(args.sweep, force=args.force)
    line = f"deleted sweep {args.sweep}" + (f" (it was {sweep.status})" if live else "")
    line += f": {removed} keys, {_bytes(memory)} of Redis memory"
    if told:
        line += f"; {' and '.join(told)} told to stop (at the next epoch, recording nothing)"
    elif live:
        line += "; nothing was running"
    print(line)
    return ExitCode.OK


def cmd_gc(args: argparse.Namespace) -> int:
    from smptune.config import parse_duration

    age = parse_duration("--older-than", args.older_than)
    store = _store(args)
    cutoff = time.time() - age
    memory = store.memory_by_sweep()
    old = []
    for row in store.list_sweeps():
        sweep = store.get_sweep(row.id)
        ended = sweep.finished or sweep.finalized_at or sweep.created
        if sweep.status.terminal and ended < cutoff:
            old.append(sweep.id)
    freed = sum(memory.get(sweep_id, 0) for sweep_id in old)
    if args.dry_run:
        for sweep_id in old:
            print(f"would delete {sweep_id} ({_bytes(memory.get(sweep_id, 0))})")
        print(f"{len(old)} sweeps ended more than {args.older_than} ago ({_bytes(freed)})")
        return ExitCode.OK
    keys = sum(store.delete_sweep(sweep_id) for sweep_id in old)
    print(
        f"deleted {len(old)} sweeps that ended more than {args.older_than} ago: {keys} keys, "
        f"{_bytes(freed)} of Redis memory"
    )
    return ExitCode.OK


def cmd_cancel(args: argparse.Namespace) -> int:
    store = _store(args)
    status = store.get_sweep(args.sweep).status
    if status.terminal:
        message = f"sweep {args.sweep} has already ended ({status}); nothing to cancel"
    else:
        store.request_cancel(args.sweep)
        message = (
            f"cancelling sweep {args.sweep}: queued trials will not start, running ones stop "
            "at their next epoch boundary (fold boundary if the trainable reports no epochs), "
            "then the partial results are written"
        )
    if args.json:
        outcome = {
            "sweep": args.sweep,
            "status": status.value,
            "cancel_requested": not status.terminal,
        }
        print(json.dumps(outcome))
    else:
        print(message)
    return ExitCode.OK


def cmd_dashboard(args: argparse.Namespace) -> int:
    import shutil
    import subprocess

    from smptune.results.optuna_export import open_storage

    _check_every(args.every)
    if not 0 < args.port < 65536:
        raise ConfigError(f"--port: must be between 1 and 65535, got {args.port}")
    # on PATH, else installed beside this Python (a virtualenv that is not activated)
    executable = shutil.which("optuna-dashboard") or shutil.which(
        "optuna-dashboard", path=str(Path(sys.executable).parent)
    )
    if executable is None:
        raise ConfigError(
            "dashboard: optuna-dashboard is not installed (pip install optuna-dashboard); "
            f"or mirror the sweep with producer results {args.sweep} --optuna-storage URL "
            "--follow and run optuna-dashboard URL yourself"
        )
    store = _store(args)
    store.get_sweep(args.sweep)  # an unknown sweep: exit 2 before anything starts
    open_storage(args.optuna_storage)  # a bad storage: exit 2 likewise
    study = args.optuna_study or args.sweep
    command = [executable, args.optuna_storage, "--host", args.address, "--port", str(args.port)]
    server = subprocess.Popen(command, stdin=subprocess.DEVNULL)
    print(
        f"optuna-dashboard on http://{args.address}:{args.port}/ (study {study!r})",
        file=sys.stderr,
        flush=True,
    )
    try:
        _follow(args, store, study, stop=lambda: server.poll() is not None)
        if server.poll() is None:
            print("the sweep has ended; the dashboard stays up until Ctrl-C", file=sys.stderr)
            server.wait()
    finally:
        if server.poll() is None:
            server.terminate()
            try:
                server.wait(10)
            except subprocess.TimeoutExpired:
                server.kill()
    if server.returncode not in (0, None, -15):
        raise SmptuneError(f"dashboard: optuna-dashboard exited with code {server.returncode}")
    return ExitCode.OK


def cmd_predict(args: argparse.Namespace) -> int:
    from rich.progress import Progress

    from smptune.training.prediction import image_files, load_predictor, predict_files

    if args.overlap is not None and not 0.0 <= args.overlap < 1.0:
        raise ConfigError(f"--overlap: must be in [0, 1), got {args.overlap}")
    files = image_files(args.images)
    predictor = load_predictor(
        args.results_dir,
        model=args.model,
        device=args.device,
        overlap=args.overlap,
        tta=args.tta,
        postprocess=args.postprocess,
    )
    written = 0
    with Progress(console=_console(stderr=True), transient=True) as progress:
        task = progress.add_task(f"predicting ({predictor.kind})", total=len(files))
        try:
            for _ in predict_files(predictor, files, args.out, lambda _: progress.advance(task)):
                written += 1
        except ConfigError as exc:
            kept = f"the {written} masks written before it stay in {args.out}" if written else ""
            raise ConfigError(f"{exc}{'; ' + kept if kept else ''}") from None
    print(f"{written} masks written to {args.out} ({predictor.kind})")
    return ExitCode.OK


COMMANDS = {
    "submit": cmd_submit,
    "status": cmd_status,
    "flower": cmd_flower,
    "results": cmd_results,
    "cancel": cmd_cancel,
    "list": cmd_list,
    "resume": cmd_resume,
    "extend": cmd_extend,
    "delete": cmd_delete,
    "gc": cmd_gc,
    "dashboard": cmd_dashboard,
    "predict": cmd_predict,
}


def _is_connection_error(exc: BaseException) -> bool:
    """A redis-py or kombu connection failure raised after the first successful PING."""
    from kombu.exceptions import OperationalError
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import TimeoutError as RedisTimeoutError

    return isinstance(exc, OperationalError | RedisConnectionError | RedisTimeoutError)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    complete(parser)
    args = parser.parse_args(argv)
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
