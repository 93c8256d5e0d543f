"""report.html: one self-contained page (CSS inline, images as data URIs, no scripts, no
external URLs) with the sweep's summary, best configuration, test metrics, sample
predictions of the final model, plots and ranking; the plots also go to ``plots/*.png``.

:func:`write_report_safely` is what the results writer calls: a report that cannot be
written logs a warning and never fails the sweep.
"""

from __future__ import annotations

import base64
import html
import json
import logging
import math
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from smptune.metric_keys import split_refined
from smptune.records import OUTCOMES, PartialRun
from smptune.results.folder import MODEL_FOLDERS, default_model, retrain_check
from smptune.results.labels import REFINED_SHOWN, metric_label, split_class_metric, variant_label
from smptune.results.per_class import FIGURES, ClassRow, Spread, per_class_rows
from smptune.results.plots import DPI, SHOWN_DPI
from smptune.search.scoring import cv_versus_test

log = logging.getLogger("smptune.report")

#: Rows of the ranking table; every trial is in trials.csv.
MAX_RANKING_ROWS = 100
PREDICTIONS = Path("final") / "predictions.png"

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
.failed{background:#c62828}.cancelled,.skipped,.pending,.running{background:#9ca3af}
.unstable{background:#b91c1c}
.scroll{overflow-x:auto}
td.err{max-width:280px;color:#8a1c1c;font-size:12px}
code{font-size:13px}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _num(value: Any, digits: int = 4) -> str:
    if _finite(value):
        return f"{value:.{digits}g}"
    return "–" if value is None else _e(value)


def _value(value: Any) -> str:
    """A parameter value for a table cell."""
    if isinstance(value, float):
        return _num(value)
    if isinstance(value, list | dict) or value is None or isinstance(value, bool):
        return _e(json.dumps(value))
    return _e(value)


def _badge(status: Any) -> str:
    status = str(status or "pending")
    css = status if status.isidentifier() else "pending"
    return f'<span class="badge {css}">{_e(status)}</span>'


def _img(png: bytes, alt: str, scale: float = SHOWN_DPI / DPI) -> str:
    """An inline PNG shown at ``scale`` of its pixel width (plots are drawn at twice the size
    they are shown, for high-density screens)."""
    data = base64.b64encode(png).decode("ascii")
    width = ""
    if png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) >= 24:
        width = f' width="{round(int.from_bytes(png[16:20], "big") * scale)}"'
    return f'<img src="data:image/png;base64,{data}" alt="{_e(alt)}"{width}>'


def _table(header: list[str], rows: list[list[str]], classes: dict[int, str] | None = None) -> str:
    """A table; ``classes`` gives a column (by index) a CSS class."""
    classes = classes or {}
    head = "".join(f"<th>{h}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="{classes[i]}">{cell}</td>' if i in classes else f"<td>{cell}</td>"
            for i, cell in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f'<div class="scroll"><table><tr>{head}</tr>{body}</table></div>'


def _searched(results: Mapping[str, Any], config: Mapping[str, Any]) -> list[str]:
    """The hyperparameters the sweep searches (not fixed), in config order."""
    space = config.get("hyperparameters") or {}
    names = list(results.get("hyperparameters") or space)
    return [
        n
        for n in names
        if not (isinstance(space.get(n), Mapping) and space[n].get("distribution") == "value")
    ]


def _duration(seconds: float) -> str:
    """``4.2 s``, ``42 s``, ``12 min``, ``3.4 h``: one way for every duration on the page."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _time_facts(results: Mapping[str, Any]) -> list[tuple[str, str]]:
    """Wall time (first trial start to last end), device time (what the runs trained, the
    records' ``device_s``) and the workers that ran trials."""
    trials = results.get("ranking") or []
    starts = [t["started"] for t in trials if _finite(t.get("started"))]
    ends = [t["finished"] for t in trials if _finite(t.get("finished"))]
    device = sum(t["device_s"] for t in trials if _finite(t.get("device_s")))
    workers = {t["worker"] for t in trials if t.get("worker")}
    facts = []
    if starts and ends and max(ends) >= min(starts):
        facts.append(("wall time", _duration(max(ends) - min(starts))))
    if device:
        facts.append(("device time", f"{_duration(device)} (runs training)"))
    if workers:
        facts.append(("workers", f"{len(workers)}"))
    return facts


def _split_facts(splits: Mapping[str, Any] | None) -> list[tuple[str, str]]:
    """The dataset's size and its splits, from ``splits.json``."""
    if not splits or not isinstance(splits.get("test"), list):
        return []
    test, train = len(splits["test"]), len(splits.get("train") or [])
    folds = [len(f.get("validation") or []) for f in splits.get("folds") or []]
    facts = [("dataset", f"{test + train} samples: {train} train, {test} test")]
    if folds:
        sizes = f"{min(folds)}" if min(folds) == max(folds) else f"{min(folds)}–{max(folds)}"
        facts.append(("validation per fold", f"{sizes} samples"))
    return facts


def _summary(
    results: Mapping[str, Any], config: Mapping[str, Any], splits: Mapping[str, Any] | None = None
) -> str:
    counts = ", ".join(f"{results[s.counter]} {s}" for s in OUTCOMES if results.get(s.counter))
    n_randoms = int(results.get("n_randoms") or 1)
    cv = f"{results.get('n_folds', '?')} folds" + (f" × {n_randoms} seeds" if n_randoms > 1 else "")
    better = "lower" if results.get("mode") == "min" else "higher"
    facts = [
        ("metric", f"{_e(results.get('metric', '?'))} ({better} is better)"),
        ("trials", f"{_e(results.get('n_trials', '?'))}" + (f" ({_e(counts)})" if counts else "")),
        ("cross-validation", _e(cv)),
        ("sampler", _e(results.get("sampler") or config.get("sampler") or "random")),
        ("pruner", _e(results.get("pruner") or config.get("pruner") or "none")),
        ("seed", _e(config.get("seed", "–"))),
        *((k, _e(v)) for k, v in _time_facts(results) + _split_facts(splits)),
    ]
    return (
        '<section id="summary"><h2>Summary</h2><div class="facts">'
        + "".join(f'<div class="fact"><b>{k}</b>{v}</div>' for k, v in facts)
        + "</div></section>"
    )


#: What the page says when the results do not say why there is no best configuration.
NO_BEST = "no complete trial has a stable score: there is no best configuration"


def _best(results: Mapping[str, Any], config: Mapping[str, Any]) -> str:
    best = results.get("best")
    if not best:
        return (
            '<section id="best"><h2>Best configuration</h2>'
            f'<p class="note">{_e(results.get("no_best") or NO_BEST)}</p>'
            "</section>"
        )
    searched = _searched(results, config)
    params = best.get("params") or {}
    rows = [[f"<b>{_e(n)}</b>", _value(params[n])] for n in searched if n in params]
    fixed = [[_e(n), _value(v)] for n, v in params.items() if n not in searched]
    std = f" ± {_num(best.get('score_std'))}" if _finite(best.get("score_std")) else ""
    facts = [
        ("trial", f"#{_e(best.get('trial'))} {_badge(best.get('status', 'complete'))}"),
        (_e(results.get("metric", "score")), f'<span class="score">{_num(best["score"])}</span>'),
        ("std over runs", std[3:] or "–"),
        ("epochs for the final model", _e(best.get("epochs", "–"))),
    ]
    at_epochs = best.get("cv_at_epochs")
    if at_epochs and _finite(at_epochs.get("score")):
        facts.insert(2, (f"CV at {_e(at_epochs['epochs'])} epochs", _num(at_epochs["score"])))
    out = [
        '<section id="best"><h2>Best configuration</h2><div class="facts">',
        "".join(f'<div class="fact"><b>{k}</b>{v}</div>' for k, v in facts),
        "</div><h3>Searched parameters</h3>",
        _table(["parameter", "value"], rows) if rows else '<p class="note">none</p>',
    ]
    if fixed:
        out += [
            f"<details><summary>{len(fixed)} fixed parameters</summary>",
            _table(["parameter", "value"], fixed),
            "</details>",
        ]
    out.append(
        '<p class="note">best_config.yaml in this folder trains this configuration again.</p>'
        "</section>"
    )
    return "".join(out)


def _test(
    test_metrics: Mapping[str, Any] | None,
    results: Mapping[str, Any],
    class_names: list[str] | None = None,
    per_class: bool = False,
) -> str:
    """The test table; ``per_class``: the per-class rows are in their own table, so this one
    leaves them out."""
    if not test_metrics:
        body = (
            '<p class="note">no test metrics: the final model has not been trained and tested '
            "(retrain_and_test is off, still running, or failed)</p>"
        )
    else:
        ensemble = results.get("fold_ensemble") or {}
        both = ensemble.get("test_metrics") or {}
        plain, _ = split_refined(test_metrics)
        rows = [
            [_e(metric_label(k, class_names)), _num(v), _num(both.get(k))]
            for k, v in plain.items()
            if not (per_class and split_class_metric(k))
        ]
        chosen = default_model(results)
        header = ["metric", "retrained model", "fold ensemble"]
        header[1 if chosen == "retrained_model" else 2] += " (default)"
        body = _table(header, rows, {1: "num", 2: "num"}) + _cv_versus_test(test_metrics, results)
        body += _default_note(chosen, results, test_metrics)
        body += _refinements(test_metrics, both)
        if both:
            body += (
                f'<p class="note">The fold ensemble averages the probabilities of trial '
                f"{_e(ensemble.get('trial'))}'s {len(ensemble.get('members') or [])} fold "
                "models at their best epochs; it is exported to final/ensemble/ "
                "(smptune.training.ensemble.load_ensemble).</p>"
            )
        elif ensemble.get("error"):
            body += f'<p class="note">no fold ensemble: {_e(ensemble["error"])}</p>'
    return f'<section id="test"><h2>Test metrics of the final model</h2>{body}</section>'


def _default_note(chosen: str, results: Mapping[str, Any], test_metrics: Mapping[str, Any]) -> str:
    """Which model is the default, and whether the retrained one fell below its floor."""
    text = (
        f"The default model is the {chosen.replace('_', ' ')} ({MODEL_FOLDERS[chosen]}/): "
        "producer predict runs it unless told --model"
        f" {'retrained' if chosen == 'fold_ensemble' else 'ensemble'}."
    )
    check = retrain_check(results, test_metrics)
    if check is not None and check["below"]:
        text += (
            f" The retrained model scores {_num(check['test'])}, below the CV after its "
            f"epochs less twice the runs' spread ({_num(check['floor'])}): its last epoch "
            "was an unlucky one; the fold ensemble does not depend on it."
        )
    return f'<p class="note">{text}</p>'


def _refinements(retrained: Mapping[str, Any], ensemble: Mapping[str, Any]) -> str:
    """The test figures with flips (``tta``) and the largest component kept
    (``postprocess``) beside the plain ones; nothing when neither is configured."""
    plain, refined = split_refined(retrained)
    plain_ensemble, refined_ensemble = split_refined(ensemble)
    if not refined:
        return ""
    header = [
        "evaluation",
        *(f"retrained {f}" for f in REFINED_SHOWN),
        *(f"ensemble {f}" for f in REFINED_SHOWN),
    ]
    rows = [
        [
            _e(label),
            *(_num(mine.get(f)) for f in REFINED_SHOWN),
            *(_num(theirs.get(f)) for f in REFINED_SHOWN),
        ]
        for label, mine, theirs in [
            ("plain", plain, plain_ensemble),
            *(
                (variant_label(v), figures, refined_ensemble.get(v) or {})
                for v, figures in refined.items()
            ),
        ]
    ]
    return (
        "<h3>Test-time augmentation and post-processing</h3>"
        + _table(header, rows, {i: "num" for i in range(1, len(header))})
        + '<p class="note">flips: the mean of the predictions of the image and its three '
        "flips; largest component: each class keeps its largest connected region "
        "(training.tta, training.postprocess; producer predict --tta, --postprocess). "
        "Every figure is on the test split.</p>"
    )


def _spread(value: Spread | None) -> str:
    return "–" if value is None else f"{_num(value.mean)} ± {_num(value.std, 2)}"


def _per_class(rows: list[ClassRow]) -> str:
    """The per-class table (:mod:`.per_class`); nothing when no figure is per class."""
    if not rows:
        return ""
    header = [
        "class",
        *(f"CV {f}" for f in FIGURES),
        *(f"retrained {f}" for f in FIGURES),
        *(f"ensemble {f}" for f in FIGURES),
    ]
    body = [
        [
            _e(row.name),
            *(_spread(row.cv[f]) for f in FIGURES),
            *(_num(row.retrained[f]) for f in FIGURES),
            *(_num(row.ensemble[f]) for f in FIGURES),
        ]
        for row in rows
    ]
    numeric = {i: "num" for i in range(1, len(header))}
    return (
        '<section id="per-class"><h2>Per class</h2>'
        + _table(header, body, numeric)
        + '<p class="note">CV: the best trial\'s runs, each at its best epoch (mean ± std '
        "over runs); retrained: the final model on the test split; ensemble: the best "
        "trial's fold models together on the test split. A class's Dice is its F1.</p>"
        "</section>"
    )


def _cv_versus_test(test_metrics: Mapping[str, Any], results: Mapping[str, Any]) -> str:
    figures = cv_versus_test(test_metrics, results)
    if figures is None:
        return ""
    cv, at_epochs, test = figures
    label = _e(results.get("metric", "score"))
    best = results.get("best") or {}
    sign = "+" if test >= cv else "−"
    text = (
        f"{label}: CV {_num(cv)} (each run at its best epoch), test {_num(test)} "
        f"({sign}{_num(abs(test - cv))})"
    )
    if at_epochs is not None:
        text += f"; CV after {_e(best.get('epochs'))} epochs, as the final model trains, " + (
            f"{_num(at_epochs)}"
        )
    return (
        f'<p class="note">{text}. The best-epoch CV score picks each run\'s epoch after '
        "seeing its validation scores, so it is optimistic; the final model trains a fixed "
        "number of epochs and keeps its last, so its test score is closer to the CV after "
        "that many epochs, and differs from it by about the runs' spread (std) when the "
        "validation and test samples are alike.</p>"
    )


def _predictions(png: bytes | None, test_metrics: Mapping[str, Any] | None) -> str:
    if png:
        body = (
            f"<figure>{_img(png, 'sample predictions of the final model', 1.0)}<figcaption>Test "
            "images, their masks and the final model's predictions "
            f"({PREDICTIONS.as_posix()}).</figcaption></figure>"
        )
    elif test_metrics:
        body = '<p class="note">the final model wrote no sample predictions</p>'
    else:
        body = '<p class="note">no final model</p>'
    return f'<section id="predictions"><h2>Sample predictions</h2>{body}</section>'


def _plot(plot: Any) -> str:
    if plot.png:
        body = (
            f"<figure>{_img(plot.png, plot.title)}<figcaption>{_e(plot.caption)} "
            f"(plots/{plot.key}.png)</figcaption></figure>"
        )
    else:
        body = f'<p class="note">{_e(plot.note)}</p>'
    return f'<section id="{plot.key}"><h2>{_e(plot.title)}</h2>{body}</section>'


def _stopped_at(partial: Any) -> str:
    """``stopped at fold 0, epoch 3`` (why, on hover) for a trial stopped inside a run."""
    if not isinstance(partial, Mapping):
        return ""
    try:
        where = PartialRun.from_dict(partial).describe()
    except (KeyError, TypeError, ValueError):
        return ""
    return f'<span title="{_e(partial.get("reason") or "")}">stopped at {_e(where)}</span>'


#: Trials named per rung in the rung table (the best first).
MAX_RUNG_NAMES = 12


def _rung_table(results: Mapping[str, Any]) -> str:
    """What each rung of a successive-halving pruner decided, a row per rung; empty without
    such a pruner."""
    listed = results.get("rungs")
    if not listed:
        return ""
    sign = -1.0 if results.get("mode") == "min" else 1.0
    several = len({r["bracket"] for r in listed}) > 1
    header = [*(["bracket"] if several else []), "rung", "read at", "epochs trained"]
    header += ["reached", "promoted", "stopped", "best there", "promoted trials (best first)"]
    rows = []
    for r in listed:
        scored = [t for t in r["trials"] if _finite(t.get("score"))]
        ranked = sorted(scored, key=lambda t: -sign * t["score"])
        kept = [f"#{t['trial']}" for t in ranked if t["promoted"]]
        named = ", ".join(kept[:MAX_RUNG_NAMES]) + (" …" if len(kept) > MAX_RUNG_NAMES else "")
        rows.append(
            [
                *([_e(r["bracket"])] if several else []),
                _e(r["rung"]),
                _e(r["where"]),
                _e(r["resource"]),
                _e(r["reached"]),
                _e(r["promoted"]),
                _e(r["stopped"]),
                _num(ranked[0]["score"]) if ranked else "–",
                _e(named) or "–",
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
    table = _table(header, rows, classes)
    return f'<section id="rung-decisions"><h2>Rung decisions</h2>{table}{note}</section>'


def _ranking(results: Mapping[str, Any], config: Mapping[str, Any]) -> str:
    trials = sorted(results.get("ranking") or [], key=lambda t: t.get("rank") or math.inf)
    searched = _searched(results, config)
    shown = trials[:MAX_RANKING_ROWS]
    stops = [_stopped_at(t.get("partial")) for t in shown]
    header = ["rank", "trial", "status", "score", "std", "runs"]
    header += ["stopped at"] if any(stops) else []
    header += [*map(_e, searched), "duration", "worker", "error"]
    rows = []
    for t, stop in zip(shown, stops, strict=True):
        scores = t.get("fold_scores") or []
        stable = sum(1 for s in scores if _finite(s))
        status = _badge(t.get("status")) + (" " + _badge("unstable") if t.get("unstable") else "")
        params = t.get("params") or {}
        duration = t.get("duration_s")
        rows.append(
            [
                _e(t.get("rank", "")),
                f"#{_e(t.get('trial'))}",
                status,
                _num(t.get("score")),
                _num(t.get("score_std"), 3),
                f"{stable}/{len(scores)}" if stable < len(scores) else str(len(scores)),
                *([stop or "–"] if any(stops) else []),
                *(_value(params[n]) if n in params else "–" for n in searched),
                _duration(duration) if _finite(duration) else "–",
                _e(t.get("worker") or "–"),
                f'<span title="{_e(t.get("error") or "")}">{_e((t.get("error") or "")[:120])}'
                "</span>",
            ]
        )
    classes = {i: "num" for i in (0, 3, 4, 5)} | {len(header) - 1: "err"}
    more = (
        f'<p class="note">the best {MAX_RANKING_ROWS} of {len(trials)} trials; trials.csv '
        "has every one</p>"
        if len(trials) > MAX_RANKING_ROWS
        else ""
    )
    table = _table(header, rows, classes)
    return f'<section id="ranking"><h2>Ranking</h2>{table}{more}</section>'


def _space(config: Mapping[str, Any]) -> str:
    space = config.get("hyperparameters") or {}
    rows = []
    for name, entry in space.items():
        if isinstance(entry, Mapping) and "distribution" in entry:
            rest = ", ".join(
                f"{k}={json.dumps(v)}" for k, v in entry.items() if k != "distribution"
            )
            text = f"<b>{_e(entry['distribution'])}</b> {_e(rest)}"
        else:
            text = _e(json.dumps(entry))
        rows.append([_e(name), text])
    body = _table(["parameter", "distribution"], rows) if rows else '<p class="note">none</p>'
    return f'<section id="space"><h2>Search space</h2>{body}</section>'


def render_html(
    results: Mapping[str, Any],
    config: Mapping[str, Any],
    test_metrics: Mapping[str, Any] | None,
    plots: list[Any],
    predictions_png: bytes | None,
    splits: Mapping[str, Any] | None = None,
) -> str:
    """The page, as one string; ``splits`` as ``splits.json`` holds them."""
    name = results.get("name") or config.get("name") or "sweep"
    sweep_id = results.get("sweep_id", "")
    by_key = {p.key: p for p in plots}
    class_names = config.get("class_names")
    per_class = per_class_rows(results, test_metrics, class_names)
    sections = [
        _summary(results, config, splits),
        _best(results, config),
        _test(test_metrics, results, class_names, bool(per_class)),
        _per_class(per_class),
        _predictions(predictions_png, test_metrics),
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
        *([("rung-decisions", "Rung decisions")] if results.get("rungs") else []),
        ("ranking", "Ranking"),
        ("space", "Search space"),
    ]
    nav = "<nav>" + "".join(f'<a href="#{k}">{_e(t)}</a>' for k, t in links) + "</nav>"
    generated = time.strftime("%Y-%m-%d %H:%M:%S %Z")
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(name)} · smptune report</title><style>{_CSS}</style></head><body>"
        f"<header><h1>{_e(name)}</h1><p>sweep <code>{_e(sweep_id)}</code> · report "
        f"written {_e(generated)} by smptune</p></header><main>{nav}"
        + "".join(sections)
        + "</main></body></html>\n"
    )


def write_report(
    results: Mapping[str, Any],
    config: Mapping[str, Any],
    out_dir: Path,
    test_metrics: Mapping[str, Any] | None = None,
) -> Path:
    """Draw the plots into ``out_dir/plots/`` and write ``out_dir/report.html``; returns the
    page's path. The final model's sample predictions are read from
    ``out_dir/final/predictions.png`` when it exists."""
    from smptune.results.plots import PLOTS, render_plots

    if test_metrics is None:
        test_metrics = results.get("test_metrics")
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
    results: Mapping[str, Any],
    config: Mapping[str, Any],
    out_dir: Path,
    test_metrics: Mapping[str, Any] | None = None,
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
