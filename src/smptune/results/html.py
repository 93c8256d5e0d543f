"""report.html: one self-contained page (CSS inline, images as data URIs, no scripts, no
external URLs) with the sweep's summary, best configuration, test metrics, sample
predictions of the final model, plots and ranking; the plots also go to ``plots/*.png``.

:func:`write_report_safely` is what the results writer calls: a report that cannot be
written logs a warning and never fails the sweep.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Mapping
from pathlib import Path

from smptune.config import SweepConfig
from smptune.records import OUTCOMES, PartialRun
from smptune.results.html_final import (
    PREDICTIONS,
    per_class_section,
    predictions_section,
    test_section,
)
from smptune.results.html_parts import (
    badge,
    duration_text,
    esc,
    finite,
    html_table,
    img,
    num,
    value_cell,
)
from smptune.results.per_class import per_class_rows
from smptune.results.plot_base import Plot
from smptune.results.summary import SweepResults
from smptune.search.distributions import space_to_dict

log = logging.getLogger("smptune.report")

#: Rows of the ranking table; every trial is in trials.csv.
MAX_RANKING_ROWS = 100

_CSS = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0;
 color:#1d2330;background:#f5f6f8}
main{max-width:1120px;margin:0 auto;padding:24px 28px 48px}
header{background:#1d2330;color:#fff;padding:20px 28px}
header h1{margin:0 0 4px;font-size:24px}header p{margin:0;color:#c4cad6}
section{background:#fff;border:1px solid #e1e4ea;border-radius:8px;padding:16px 20px;
 margin:18px 0}
h2{font-size:18px;margin:0 0 12px}
nav a{margin-right:14px;color:#3451b2;text-decoration:none}
table{border-collapse:collapse;font-size:13px}
th,td{padding:4px 10px;border-bottom:1px solid #eceef2;text-align:left;vertical-align:top}
th{background:#f0f2f6;font-weight:600}
td.num{text-align:right;font-variant-numeric:tabular-nums}
.facts{display:grid;grid-template-columns:repeat(auto-fit,minmax(200px,1fr));gap:10px}
.fact{background:#f5f6f8;border-radius:6px;padding:8px 12px}
.fact b{display:block;font-size:12px;color:#5b6475;font-weight:600}
.score{font-size:20px;font-weight:600}
figure{margin:0}figure img{max-width:100%;height:auto;border:1px solid #eceef2}
figcaption,.note{color:#5b6475;font-size:13px;margin-top:6px}
.note{font-style:italic}
.badge{display:inline-block;padding:0 7px;border-radius:9px;font-size:12px;color:#fff}
.complete{background:#2e7d32}.pruned{background:#6b7280}.stopped{background:#d97706}
.failed{background:#c62828}.infeasible{background:#ad1457}.cancelled,.skipped,.pending,.running{background:#9ca3af}
.unstable{background:#b91c1c}
.scroll{overflow-x:auto}
td.err{max-width:280px;color:#8a1c1c;font-size:12px}
code{font-size:13px}
"""


def _searched(results: SweepResults, config: SweepConfig) -> list[str]:
    """The hyperparameters the sweep searches (not fixed), in config order."""
    space = config.hyperparameters
    names = list(results.hyperparameters or space)
    return [n for n in names if not (n in space and space[n].kind == "value")]


def _time_facts(results: SweepResults) -> list[tuple[str, str]]:
    """Wall time (first trial start to last end), device time (what the runs trained, the
    records' ``device_s``) and the workers that ran trials."""
    trials = results.ranking
    starts = [t.started for t in trials if t.started is not None and finite(t.started)]
    ends = [t.finished for t in trials if t.finished is not None and finite(t.finished)]
    device = sum(t.device_s for t in trials if finite(t.device_s))
    workers = {t.worker for t in trials if t.worker}
    facts = []
    if starts and ends and max(ends) >= min(starts):
        facts.append(("wall time", duration_text(max(ends) - min(starts))))
    if device:
        facts.append(("device time", f"{duration_text(device)} (runs training)"))
    if workers:
        facts.append(("workers", f"{len(workers)}"))
    return facts


def _split_facts(splits: Mapping[str, object] | None) -> list[tuple[str, str]]:
    """The dataset's size and its splits, from ``splits.json``."""
    tested = splits.get("test") if splits else None
    if splits is None or not isinstance(tested, list):
        return []
    test, train = len(tested), len(_list(splits.get("train")))
    folds = [
        len(_list(f.get("validation")))
        for f in _list(splits.get("folds"))
        if isinstance(f, Mapping)
    ]
    facts = [("dataset", f"{test + train} samples: {train} train, {test} test")]
    if folds:
        sizes = f"{min(folds)}" if min(folds) == max(folds) else f"{min(folds)}–{max(folds)}"
        facts.append(("validation per fold", f"{sizes} samples"))
    return facts


def _list(value: object) -> list[object]:
    """A list of ``splits.json`` (empty where it has none)."""
    if not value:
        return []
    if not isinstance(value, list):
        raise TypeError(f"splits.json: not a list: {value!r}")
    return value


def _objective_facts(results: SweepResults) -> list[tuple[str, str]]:
    """A multi-objective sweep's metrics with their modes and its select rule."""
    if results.pareto is None:
        return []
    objectives = results.pareto.objectives
    named = ", ".join(f"{o.name} ({o.mode})" for o in objectives.objectives)
    return [("objectives", esc(named)), ("final model", esc(f"the {objectives.select}"))]


def _summary(
    results: SweepResults, config: SweepConfig, splits: Mapping[str, object] | None = None
) -> str:
    counts = ", ".join(f"{results.count(s)} {s}" for s in OUTCOMES if results.count(s))
    n_randoms = results.n_randoms
    cv = f"{results.n_folds} folds" + (f" × {n_randoms} seeds" if n_randoms > 1 else "")
    better = "lower" if results.mode == "min" else "higher"
    facts = [
        ("metric", f"{esc(results.metric)} ({better} is better)"),
        *_objective_facts(results),
        ("trials", f"{esc(results.n_trials)}" + (f" ({esc(counts)})" if counts else "")),
        ("cross-validation", esc(cv)),
        ("sampler", esc(results.sampler or config.sampler or "random")),
        ("pruner", esc(results.pruner or config.pruner or "none")),
        ("seed", esc(config.seed)),
        *((k, esc(v)) for k, v in _time_facts(results) + _split_facts(splits)),
    ]
    return (
        '<section id="summary"><h2>Summary</h2><div class="facts">'
        + "".join(f'<div class="fact"><b>{k}</b>{v}</div>' for k, v in facts)
        + "</div></section>"
    )


#: What the page says when the results do not say why there is no best configuration.
NO_BEST = "no complete trial has a stable score: there is no best configuration"


def _best(results: SweepResults, config: SweepConfig) -> str:
    best = results.best
    if not best:
        return (
            '<section id="best"><h2>Best configuration</h2>'
            f'<p class="note">{esc(results.no_best or NO_BEST)}</p>'
            "</section>"
        )
    searched = _searched(results, config)
    params = best.params
    rows = [[f"<b>{esc(n)}</b>", value_cell(params[n])] for n in searched if n in params]
    fixed = [[esc(n), value_cell(v)] for n, v in params.items() if n not in searched]
    std = f" ± {num(best.score_std)}" if finite(best.score_std) else ""
    facts = [
        ("trial", f"#{esc(best.trial)} {badge(best.status.value)}"),
        (esc(results.metric), f'<span class="score">{num(best.score)}</span>'),
        ("std over runs", std[3:] or "–"),
        ("epochs for the final model", esc(best.epochs)),
    ]
    at_epochs = best.cv_at_epochs
    if at_epochs and finite(at_epochs.score):
        facts.insert(2, (f"CV at {esc(at_epochs.epochs)} epochs", num(at_epochs.score)))
    out = [
        '<section id="best"><h2>Best configuration</h2><div class="facts">',
        "".join(f'<div class="fact"><b>{k}</b>{v}</div>' for k, v in facts),
        "</div><h3>Searched parameters</h3>",
        html_table(["parameter", "value"], rows) if rows else '<p class="note">none</p>',
    ]
    if fixed:
        out += [
            f"<details><summary>{len(fixed)} fixed parameters</summary>",
            html_table(["parameter", "value"], fixed),
            "</details>",
        ]
    out.append(
        '<p class="note">best_config.yaml in this folder trains this configuration again.</p>'
        "</section>"
    )
    return "".join(out)


def _plot(plot: Plot) -> str:
    if plot.png:
        body = (
            f"<figure>{img(plot.png, plot.title)}<figcaption>{esc(plot.caption)} "
            f"(plots/{plot.key}.png)</figcaption></figure>"
        )
    else:
        body = f'<p class="note">{esc(plot.note)}</p>'
    return f'<section id="{plot.key}"><h2>{esc(plot.title)}</h2>{body}</section>'


def _stopped_at(partial: PartialRun | None) -> str:
    """``stopped at fold 0, epoch 3`` (why, on hover) for a trial stopped inside a run."""
    if partial is None:
        return ""
    where = partial.describe()
    return f'<span title="{esc(partial.reason or "")}">stopped at {esc(where)}</span>'


#: Trials named per rung in the rung table (the best first).
MAX_RUNG_NAMES = 12


def _rung_table(results: SweepResults) -> str:
    """What each rung of a successive-halving pruner decided, a row per rung; empty without
    such a pruner."""
    listed = results.rungs
    if not listed:
        return ""
    sign = -1.0 if results.mode == "min" else 1.0
    several = len({r.bracket for r in listed}) > 1
    header = [*(["bracket"] if several else []), "rung", "read at", "epochs trained"]
    header += ["reached", "promoted", "stopped", "best there", "promoted trials (best first)"]
    rows = []
    for r in listed:
        scored = [(t, t.score) for t in r.trials if t.score is not None and finite(t.score)]
        ranked = sorted(scored, key=lambda ts: -sign * ts[1])
        kept = [f"#{t.trial}" for t, _ in ranked if t.promoted]
        named = ", ".join(kept[:MAX_RUNG_NAMES]) + (" …" if len(kept) > MAX_RUNG_NAMES else "")
        rows.append(
            [
                *([esc(r.bracket)] if several else []),
                esc(r.rung),
                esc(r.where),
                esc(r.resource),
                esc(r.reached),
                esc(r.promoted),
                esc(r.stopped),
                num(ranked[0][1]) if ranked else "–",
                esc(named) or "–",
            ]
        )
    start = 1 if several else 0
    classes = {i: "num" for i in range(start + 2, start + 7)}
    note = (
        '<p class="note">Inside fold 0 a rung reads the run\'s best epoch so far; after a fold, '
        "the trial's mean over its folds so far. A trial goes on while it is in the best third "
        "(1 / reduction_factor) of the trials that reached the rung; the first "
        "bootstrap_count trials at a rung all go on.</p>"
    )
    table = html_table(header, rows, classes)
    return f'<section id="rung-decisions"><h2>Rung decisions</h2>{table}{note}</section>'


def _ranking(results: SweepResults, config: SweepConfig) -> str:
    trials = sorted(results.ranking, key=lambda t: t.rank or math.inf)
    searched = _searched(results, config)
    shown = trials[:MAX_RANKING_ROWS]
    stops = [_stopped_at(t.partial) for t in shown]
    header = ["rank", "trial", "status", "score", "std", "runs"]
    header += ["stopped at"] if any(stops) else []
    header += [*map(esc, searched), "duration", "worker", "error"]
    rows = []
    for t, stop in zip(shown, stops, strict=True):
        scores = t.fold_scores
        stable = sum(1 for s in scores if finite(s))
        status = badge(t.status.value) + (" " + badge("unstable") if t.unstable else "")
        if t.batch_size is not None:  # on_oom: halve_batch
            status += f" ran with batch_size {esc(t.batch_size)}"
        params = t.params
        duration = t.duration_s
        rows.append(
            [
                esc(t.rank),
                f"#{esc(t.trial)}",
                status,
                num(t.score),
                num(t.score_std, 3),
                f"{stable}/{len(scores)}" if stable < len(scores) else str(len(scores)),
                *([stop or "–"] if any(stops) else []),
                *(value_cell(params[n]) if n in params else "–" for n in searched),
                duration_text(duration) if duration is not None and finite(duration) else "–",
                esc(t.worker or "–"),
                f'<span title="{esc(t.error or "")}">{esc((t.error or "")[:120])}</span>',
            ]
        )
    classes = {i: "num" for i in (0, 3, 4, 5)} | {len(header) - 1: "err"}
    more = (
        f'<p class="note">the best {MAX_RANKING_ROWS} of {len(trials)} trials; trials.csv '
        "has every one</p>"
        if len(trials) > MAX_RANKING_ROWS
        else ""
    )
    table = html_table(header, rows, classes)
    return f'<section id="ranking"><h2>Ranking</h2>{table}{more}</section>'


def _space(config: SweepConfig) -> str:
    space = space_to_dict(config.hyperparameters)
    rows = []
    for name, entry in space.items():
        if isinstance(entry, Mapping) and "distribution" in entry:
            rest = ", ".join(
                f"{k}={json.dumps(v)}" for k, v in entry.items() if k != "distribution"
            )
            text = f"<b>{esc(entry['distribution'])}</b> {esc(rest)}"
        else:
            text = esc(json.dumps(entry))
        rows.append([esc(name), text])
    body = html_table(["parameter", "distribution"], rows) if rows else '<p class="note">none</p>'
    return f'<section id="space"><h2>Search space</h2>{body}</section>'


def render_html(
    results: SweepResults,
    config: SweepConfig,
    test_metrics: Mapping[str, float] | None,
    plots: list[Plot],
    predictions_png: bytes | None,
    splits: Mapping[str, object] | None = None,
) -> str:
    """The page, as one string; ``splits`` as ``splits.json`` holds them."""
    name = results.name or config.name or "sweep"
    sweep_id = results.sweep_id
    by_key = {p.key: p for p in plots}
    class_names = config.class_names
    per_class = per_class_rows(results, test_metrics, class_names)
    sections = [
        _summary(results, config, splits),
        _best(results, config),
        test_section(test_metrics, results, class_names, bool(per_class)),
        per_class_section(per_class),
        predictions_section(predictions_png, test_metrics),
        *(_plot(p) for p in plots),
        _rung_table(results),
        _ranking(results, config),
        _space(config),
    ]
    links = [
        ("best", "Best"),
        ("test", "Test"),
        *([("per-class", "Per class")] if per_class else []),
        ("predictions", "Predictions"),
        *((k, p.title) for k, p in by_key.items()),
        *([("rung-decisions", "Rung decisions")] if results.rungs else []),
        ("ranking", "Ranking"),
        ("space", "Search space"),
    ]
    nav = "<nav>" + "".join(f'<a href="#{k}">{esc(t)}</a>' for k, t in links) + "</nav>"
    generated = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{esc(name)} · smptune report</title><style>{_CSS}</style></head><body>"
        f"<header><h1>{esc(name)}</h1><p>sweep <code>{esc(sweep_id)}</code> · report "
        f"written {esc(generated)} by smptune</p></header><main>{nav}"
        + "".join(sections)
        + "</main></body></html>\n"
    )


def write_report(
    results: SweepResults,
    config: SweepConfig,
    out_dir: Path,
    test_metrics: Mapping[str, float] | None = None,
) -> Path:
    """Draw the plots into ``out_dir/plots/`` and write ``out_dir/report.html``; returns the
    page's path. The final model's sample predictions are read from
    ``out_dir/final/predictions.png`` when it exists."""
    from smptune.results.plots import PLOTS, render_plots

    plots = render_plots(results, config)
    drawn = {plot.key: plot.png for plot in plots}
    plots_dir = out_dir / "plots"
    try:
        plots_dir.mkdir(parents=True, exist_ok=True)
        for key in dict.fromkeys([*(key for key, _, _ in PLOTS), *drawn]):
            path = plots_dir / f"{key}.png"
            png = drawn.get(key)
            if png:
                path.write_bytes(png)
            else:
                path.unlink(missing_ok=True)  # no stale plot from an earlier write
    except OSError as exc:  # the page still carries every plot
        log.warning("cannot write the plots to %s: %s", plots_dir, exc)
    predictions = out_dir / PREDICTIONS
    png = predictions.read_bytes() if predictions.is_file() else None
    page = out_dir / "report.html"
    splits = None
    if (out_dir / "splits.json").is_file():
        try:
            splits = json.loads((out_dir / "splits.json").read_text())
        except (OSError, ValueError):  # the page goes on without the split sizes
            splits = None
    page.write_text(
        render_html(results, config, test_metrics, plots, png, splits), encoding="utf-8"
    )
    return page


def write_report_safely(
    results: SweepResults,
    config: SweepConfig,
    out_dir: Path,
    test_metrics: Mapping[str, float] | None = None,
) -> Path | None:
    """:func:`write_report`, but a failure only logs a warning (the sweep goes on)."""
    try:
        return write_report(results, config, out_dir, test_metrics)
    except Exception as exc:
        log.warning(
            "cannot write the report in %s (%s: %s); the other results files are written",
            out_dir,
            type(exc).__name__,
            exc,
        )
        return None
