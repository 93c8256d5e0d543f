"""``python -m benchmarks [--quick] [--only NAME[,NAME]]``: every benchmark, one table.

Each benchmark is a module of this package with a function ``rows(quick: bool) ->
list[Row]`` (:class:`benchmarks.harness.Row`) that measures its figures and their references
side by side in the same run; adding one is adding its name to :data:`BENCHMARKS`. The
table lists each figure, the measured value, its reference (an ideal, a baseline measured in
the same run, or a budget), their ratio, the target for that ratio and pass/miss.
The exit code is 0 even when a figure misses (timings are noisy); 1 when a benchmark fails.
"""

from __future__ import annotations

import argparse
import importlib
import sys
import time
import traceback
from collections.abc import Sequence

from benchmarks.table import Row, print_table

#: Benchmark modules, in the order they run (``--only`` picks among them).
BENCHMARKS: tuple[str, ...] = (
    "scheduling",
    "trial_cost",
    "training_loop",
    "ddp_throughput",
    "host_sharing",
    "scale",
    "fleet",
    "recovery",
    "search",
    "multi_fidelity",
    "search_real_data",
    "gpu",
    "peers",
)


def run(names: Sequence[str], quick: bool) -> tuple[list[Row], list[str]]:
    """Run the named benchmarks; their rows, and the names of those that raised."""
    rows: list[Row] = []
    failed: list[str] = []
    for name in names:
        started = time.monotonic()
        print(f"[{name}] running...", file=sys.stderr, flush=True)
        try:
            module = importlib.import_module(f"benchmarks.{name}")
            rows += module.rows(quick)
        except Exception:
            traceback.print_exc()
            failed.append(name)
            rows.append(Row(f"{name}: FAILED (see the traceback above)", None))
        print(f"[{name}] {time.monotonic() - started:.0f} s", file=sys.stderr, flush=True)
    return rows, failed


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="the short form CI runs")
    parser.add_argument(
        "--only", metavar="NAME[,NAME]", help=f"run only these, of: {', '.join(BENCHMARKS)}"
    )
    args = parser.parse_args(argv)
    names = list(BENCHMARKS)
    if args.only:
        names = [n.strip() for n in args.only.split(",") if n.strip()]
        unknown = [n for n in names if n not in BENCHMARKS]
        if unknown:
            known = ", ".join(BENCHMARKS)
            parser.error(f"--only: unknown benchmark {unknown[0]!r}; known: {known}")
    started = time.monotonic()
    rows, failed = run(names, args.quick)
    form = "quick" if args.quick else "full"
    print(f"\nsmptune benchmarks ({form} form, {time.monotonic() - started:.0f} s)")
    print_table(rows)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
