"""How the ``producer`` subcommands print: the console, sizes, trial numbers, and an ended
sweep's outcome."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from smptune.errors import ExitCode

if TYPE_CHECKING:
    from smptune.results.status_snapshot import StatusSnapshot


def console(stderr: bool = False) -> Any:
    """A rich console; 200 columns wide when it is not a terminal."""
    from rich.console import Console

    out = Console(highlight=False, stderr=stderr)
    if not out.is_terminal:  # logs and pipes: no wrapping of ids at 80 columns
        out = Console(highlight=False, width=200, stderr=stderr)
    return out


def human_bytes(n: int) -> str:
    """``512 B``, ``12.3 MiB``."""
    if n < 1024:
        return f"{n} B"
    size = float(n)
    for unit in ("KiB", "MiB", "GiB"):
        size /= 1024
        if size < 1024 or unit == "GiB":
            break
    return f"{size:.1f} {unit}"


def numbers(trials: list[int]) -> str:
    """The first 20 trial numbers, comma-separated, and how many in all beyond that."""
    shown = ", ".join(map(str, trials[:20]))
    return shown + (f", ... ({len(trials)} in all)" if len(trials) > 20 else "")


def print_final_figures(console: Any, results: Any, test_metrics: Any) -> None:
    from smptune.results.labels import metrics_text
    from smptune.results.progress import cv_versus_test_line

    if results is None:
        return
    ensemble = results.ensemble_metrics
    if ensemble:
        shown = metrics_text(ensemble, results.class_names)
        console.print(f"test metrics of its fold ensemble: {shown}", markup=False)
    line = cv_versus_test_line(results, test_metrics)
    if line:
        console.print(line, markup=False)


def print_outcome(console: Any, store: Any, sweep_id: str, snap: StatusSnapshot) -> int:
    from smptune.results.progress import ranking_table
    from smptune.results.summary import SweepResults

    sweep = store.get_sweep(sweep_id, full=True)
    results = SweepResults.from_dict(sweep.results) if sweep.results else None
    if results:
        console.print(ranking_table(results))
        if results.pareto is not None:
            console.print(results.pareto.front_line(), markup=False)
        if results.no_best:
            console.print(f"sweep {sweep_id}: {results.no_best}", markup=False)
    if sweep.test_metrics:
        from smptune.results.labels import metrics_text

        metrics = metrics_text(sweep.test_metrics, sweep.config.class_names)
        console.print(f"test metrics of the best configuration: {metrics}", markup=False)
        print_final_figures(console, results, sweep.test_metrics)
    console.print(f"results: {Path(sweep.artifacts_dir) / sweep_id}")
    if snap.status.value != "done":
        console.print(f"sweep {sweep_id} ended {snap.status.value}: {snap.error or ''}")
        return ExitCode.FAILURE
    return ExitCode.OK
