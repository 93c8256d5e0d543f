"""The report's plots, drawn with matplotlib's Agg canvas (no display, no pyplot state).

Each plot reads the results as :func:`smptune.results.folder.summarize` returns them (or as
results.json holds them) and the sweep's config. :func:`render_plots` draws them all to PNG
bytes; a plot that cannot say anything yet (too few trials) or fails to draw carries a note
instead, so the report always has these sections: the optimisation history, the learning
curves, every run's score, parallel coordinates and parameter importances. The learning
curves are the exception: results without any (an older results.json, a trainable that
reports no epochs) have no such section at all.
"""

from __future__ import annotations

import io
import json
import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from smptune.records import TrialStatus
from smptune.results.optuna_export import (
    direction,
    run_scores,
    search_space,
    study_trials,
    user_view,
)
from smptune.search.adaptive import observe
from smptune.search.scoring import run_index

log = logging.getLogger("smptune.report")

#: Trials shown in the per-run plot (best first); every trial is in trials.csv.
MAX_FOLD_TRIALS = 30
#: Lines in the parallel-coordinates plot at most (the best trial and a seeded sample).
MAX_LINES = 1000
#: Above this many complete trials fANOVA's trees are limited to depth 6 (about 2 s, however
#: many trials; Optuna's default depth takes about 20 ms per trial).
FANOVA_FULL_DEPTH_TRIALS = 200
#: Complete trials fANOVA is fitted to at most (a seeded random sample beyond that).
MAX_IMPORTANCE_TRIALS = 2000
_STATUS_STYLE = {
    "complete": ("tab:blue", "o"),
    "pruned": ("tab:gray", "v"),
    "stopped": ("tab:orange", "s"),
    "unstable": ("tab:red", "X"),
}


class NoPlot(Exception):
    """Why a plot is not drawn (shown in the report in its place)."""


@dataclass
class Plot:
    """One plot of the report: PNG bytes, or a note saying why there are none."""

    key: str
    title: str
    caption: str = ""
    png: bytes | None = None
    note: str = ""


def _finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def _scored(results: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Trials with a score (complete, pruned or stopped), in ranking order."""
    return [
        t
        for t in results.get("ranking") or []
        if TrialStatus(t.get("status", "pending")).scored and _finite(t.get("score"))
    ]


def _style(trial: Mapping[str, Any]) -> tuple[str, str]:
    key = "unstable" if trial.get("unstable") else str(trial.get("status"))
    return _STATUS_STYLE.get(key, ("tab:purple", "o"))


def _better(results: Mapping[str, Any]) -> str:
    return "lower is better" if results.get("mode") == "min" else "higher is better"


def _metric(results: Mapping[str, Any]) -> str:
    return str(results.get("metric") or "score")


#: Pixels per inch of the PNGs; the report shows them at :data:`SHOWN_DPI`.
DPI, SHOWN_DPI = 200, 100
#: Below this many complete trials fANOVA's importances are noted as unreliable.
RELIABLE_IMPORTANCE_TRIALS = 20


def _figure(width: float, height: float) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    # drawn at twice the size it is shown (the page halves it): sharp on high-density screens
    fig = Figure(figsize=(width, height), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    return fig


def png_bytes(fig: Any) -> bytes:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()


def _legend(ax: Any, present: set[str]) -> None:
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], color=color, marker=marker, linestyle="", label=status)
        for status, (color, marker) in _STATUS_STYLE.items()
        if status in present
    ]
    if len(handles) > 1:
        ax.legend(handles=handles, loc="best", fontsize=8)


def history(results: Mapping[str, Any], config: Mapping[str, Any]) -> tuple[Any, str]:
    """Score of each trial in the order the trials finished, and the best so far."""
    from matplotlib.ticker import MaxNLocator

    scored = sorted(
        _scored(results),
        key=lambda t: (t["finished"] if _finite(t.get("finished")) else math.inf, t["trial"]),
    )
    if not scored:
        raise NoPlot("no trial has a score yet")
    fig = _figure(8, 4.2)
    ax = fig.add_subplot()
    groups: dict[str, list[tuple[int, float]]] = {}
    for x, t in enumerate(scored, start=1):
        groups.setdefault("unstable" if t.get("unstable") else t["status"], []).append(
            (x, t["score"])
        )
    for status, points in groups.items():
        color, marker = _style({"status": status, "unstable": status == "unstable"})
        xs, ys = zip(*points, strict=True)
        ax.scatter(xs, ys, color=color, marker=marker, s=28, zorder=3)
    sign = -1.0 if results.get("mode") == "min" else 1.0
    best_x, best_y, best = [], [], None
    for x, t in enumerate(scored, start=1):
        improves = best is None or sign * t["score"] > sign * best
        if t["status"] == "complete" and not t.get("unstable") and improves:
            best = t["score"]
        if best is not None:
            best_x.append(x)
            best_y.append(best)
    if best_x:
        ax.step(best_x, best_y, where="post", color="tab:green", lw=2, label="best so far")
    chosen = (results.get("best") or {}).get("trial")
    for x, t in enumerate(scored, start=1):
        if t["trial"] == chosen:
            ax.scatter([x], [t["score"]], marker="*", s=220, color="gold", ec="black", zorder=4)
            ax.annotate(
                f"best: trial {chosen}",
                (x, t["score"]),
                textcoords="offset points",
                xytext=(6, 8),
                fontsize=8,
            )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trials, in the order they finished")
    ax.set_ylabel(f"{_metric(results)} ({_better(results)})")
    ax.grid(alpha=0.3)
    _legend(ax, set(groups))
    unscored = len(results.get("ranking") or []) - len(scored)
    caption = (
        f"Score of each of the {len(scored)} scored trials in the order they finished; the "
        "green line is the best complete trial so far, the star the trial chosen as best."
    )
    if unscored:
        caption += f" {unscored} trial(s) without a score (failed, skipped, ...) are not shown."
    return fig, caption


def _runs(entry: Mapping[str, Any]) -> list[tuple[int, list[float]]]:
    """``(run index, score per epoch)`` of each run of a learning-curve entry with at least
    one finite score, in run order (NaN for an epoch without a finite score)."""
    out = []
    for run, curve in (entry.get("curves") or {}).items():
        ys = [float(v) if _finite(v) else math.nan for v in curve or []]
        if any(math.isfinite(y) for y in ys):
            out.append((int(run), ys))
    return sorted(out, key=lambda r: r[0])


def _stop_point(curve: list[float], epochs: Any) -> tuple[int, float] | None:
    """Where a run stopped after ``epochs`` epochs: its last finite score up to there."""
    last = min(len(curve), int(epochs)) if _finite(epochs) else len(curve)
    for epoch in range(last, 0, -1):
        if math.isfinite(curve[epoch - 1]):
            return epoch, curve[epoch - 1]
    return None


def learning_curves(
    results: Mapping[str, Any], config: Mapping[str, Any]
) -> tuple[Any, str] | None:
    """Validation score per epoch of each run of the best complete trials (solid, a colour per
    trial) and of the trials stopped inside a run (dashed grey, × where they stopped); None
    when the results hold no learning curves (no section in the report)."""
    from matplotlib import colormaps
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    listed = [c for c in results.get("learning_curves") or [] if c.get("curves")]
    if not listed:
        return None
    n_randoms = int(results.get("n_randoms") or 1)
    complete = [c for c in listed if c.get("status") == "complete" and not c.get("partial")]
    stopped = [c for c in listed if c not in complete]
    fig = _figure(8, 4.6)
    ax = fig.add_subplot()
    drawn = 0
    for c in stopped:  # beneath the complete trials
        partial = c.get("partial") or {}
        stop_run = None
        if _finite(partial.get("fold")):
            stop_run = run_index(int(partial["fold"]), int(partial.get("repeat") or 0), n_randoms)
        for run, ys in _runs(c):
            drawn += 1
            ax.plot(range(1, len(ys) + 1), ys, color="tab:gray", ls="--", lw=0.9, alpha=0.6)
            point = _stop_point(ys, partial.get("epochs")) if run == stop_run else None
            if point is not None:
                ax.scatter(*point, marker="x", s=30, color="dimgray", lw=1.2, zorder=3)
    palette = colormaps["tab10"]
    handles: list[Any] = []
    for i, c in enumerate(complete):
        color = palette(i % palette.N)
        for _, ys in _runs(c):
            drawn += 1
            ax.plot(range(1, len(ys) + 1), ys, color=color, lw=1.2, alpha=0.85, zorder=2)
        label = f"trial {c.get('trial')} (rank {c.get('rank')})"
        handles.append(Line2D([], [], color=color, lw=1.6, label=label))
    if not drawn:
        raise NoPlot("no epoch of the listed trials has a finite validation score")
    if stopped:
        label = f"{len(stopped)} stopped inside a run"
        handles.append(
            Line2D(
                [], [], color="tab:gray", ls="--", lw=0.9, marker="x", mec="dimgray", label=label
            )
        )
    ax.legend(handles=handles, loc="best", fontsize=8)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")
    ax.set_ylabel(f"validation {_metric(results)} ({_better(results)})")
    ax.grid(alpha=0.3)
    parts = []
    if complete:
        best = "best complete trial" if len(complete) == 1 else "best complete trials"
        parts.append(f"the {len(complete)} {best} (solid, a colour per trial)")
    if stopped:
        trials = "trial" if len(stopped) == 1 else "trials"
        parts.append(f"{len(stopped)} {trials} stopped inside a run (dashed, × where they stopped)")
    caption = (
        f"Validation {_metric(results)} per epoch of each run (a fold, or a fold with one "
        f"seed): {' and '.join(parts)}; a gap is an epoch without a finite score."
    )
    return fig, caption


def fold_scores(results: Mapping[str, Any], config: Mapping[str, Any]) -> tuple[Any, str]:
    """Each run's score (fold × seed) per trial, best trials first."""
    import numpy as np

    ranked = [t for t in results.get("ranking") or [] if run_scores(t)]
    if not ranked:
        raise NoPlot("no run has finished yet")
    shown = ranked[:MAX_FOLD_TRIALS]
    fig = _figure(max(6.0, 1.0 + 0.36 * len(shown)), 4.4)
    ax = fig.add_subplot()
    unstable_runs = 0
    for i, t in enumerate(shown):
        scores = list(run_scores(t).values())
        finite = [s for s in scores if math.isfinite(s)]
        color, _ = _style({**t, "unstable": False})
        if len(finite) >= 3:
            ax.boxplot(
                [finite],
                positions=[i],
                widths=0.55,
                showfliers=False,
                manage_ticks=False,
                medianprops={"color": "tab:gray"},
            )
        offsets = np.linspace(-0.15, 0.15, len(finite)) if len(finite) > 1 else [0.0]
        ax.scatter(i + np.asarray(offsets), finite, s=14, color=color, alpha=0.8, zorder=3)
        if _finite(t.get("score")):
            ax.scatter([i], [t["score"]], marker="D", s=30, color="black", zorder=4)
        bad = len(scores) - len(finite)
        if bad:
            unstable_runs += bad
            ax.scatter(
                [i] * bad,
                [0.03] * bad,
                marker="x",
                color="tab:red",
                transform=ax.get_xaxis_transform(),
                zorder=4,
            )
    ax.set_xticks(range(len(shown)), [f"#{t['trial']}" for t in shown], fontsize=8)
    ax.set_xlim(-0.7, len(shown) - 0.3)
    ax.set_xlabel("trials, best first (#trial number)")
    ax.set_ylabel(f"run {_metric(results)} ({_better(results)})")
    ax.grid(axis="y", alpha=0.3)
    caption = (
        "Each dot is one run (a fold, or a fold with one seed) at its best epoch; a box spans "
        "the quartiles of a trial's runs, the black diamond is the trial's score (the mean of "
        "its stable runs)."
    )
    statuses = {t.get("status") for t in shown}
    if "pruned" in statuses:
        caption += " Grey dots: pruned trials."
    if "stopped" in statuses:
        caption += " Orange dots: trials stopped by the time budget."
    if any(not TrialStatus(s or "pending").scored for s in statuses):
        caption += " Purple dots: runs of trials that failed or were cancelled later."
    if unstable_runs:
        caption += f" Red crosses at the bottom: {unstable_runs} unstable run(s) (NaN or ±inf)."
    if len(ranked) > len(shown):
        caption += f" The best {len(shown)} of {len(ranked)} trials with runs are shown."
    return fig, caption


def _axis(
    dist: Any, labels: Mapping[str, str]
) -> tuple[Callable[[Any], float], list[tuple[float, str]]]:
    """Map a parameter's Optuna-internal value to [0, 1], and the ticks of its axis
    (``labels``: the user's value of an internal one, by ``repr``)."""
    from optuna.distributions import CategoricalDistribution

    if isinstance(dist, CategoricalDistribution):
        choices = list(dist.choices)
        step = 1.0 / (len(choices) - 1)
        index = {repr(c): i for i, c in enumerate(choices)}
        ticks = [(i * step, _short(labels.get(repr(c), c))) for i, c in enumerate(choices)]
        return (lambda v: index.get(repr(v), math.nan) * step), ticks
    low, high = float(dist.low), float(dist.high)
    if dist.log:
        lo, hi = math.log10(low), math.log10(high)

        def scale(v: Any) -> float:
            return (math.log10(float(v)) - lo) / (hi - lo)

        mid = 10 ** ((lo + hi) / 2)
    else:

        def scale(v: Any) -> float:
            return (float(v) - low) / (high - low)

        mid = (low + high) / 2
    return scale, [(0.0, f"{low:.3g}"), (0.5, f"{mid:.3g}"), (1.0, f"{high:.3g}")]


def _short(value: Any, width: int = 16) -> str:
    text = str(value)
    return text if len(text) <= width else text[: width - 1] + "…"


def parallel_coordinates(results: Mapping[str, Any], config: Mapping[str, Any]) -> tuple[Any, str]:
    """One line per scored, stable trial through its parameters and its score."""
    import numpy as np
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.collections import LineCollection
    from matplotlib.colors import Normalize

    trials = [t for t in _scored(results) if not t.get("unstable")]
    if not trials:
        raise NoPlot("no stable trial has a score yet")
    scored = len(trials)
    if scored > MAX_LINES:  # ranked best first: keep the best, sample the rest
        import random

        trials = [trials[0], *random.Random(0).sample(trials[1:], MAX_LINES - 1)]
    space = search_space(config)
    observed = [observe(space, t.get("params") or {}, view=user_view) for t in trials]
    axes: dict[str, Any] = {}
    for _, distributions in observed:
        for name, dist in distributions.items():
            if name not in axes and not dist.single():
                axes[name] = dist
    if not axes:
        raise NoPlot("no parameter varies in this search space")
    names = list(axes)
    labels: dict[str, dict[str, str]] = {name: {} for name in names}
    for t, (values, _) in zip(trials, observed, strict=True):
        for key, internal in values.items():
            raw = t["params"].get(key.partition("|")[0])
            text = json.dumps(raw) if isinstance(raw, list | dict | bool) or raw is None else raw
            labels.setdefault(key, {})[repr(internal)] = str(text)
    scales = {name: _axis(dist, labels[name]) for name, dist in axes.items()}
    scores = np.array([t["score"] for t in trials], dtype=float)
    lo, hi = float(scores.min()), float(scores.max())
    span = hi - lo or 1.0
    cmap = colormaps["viridis_r" if results.get("mode") == "min" else "viridis"]
    norm = Normalize(lo, hi if hi > lo else lo + 1e-12)
    order = np.argsort(scores if results.get("mode") != "min" else -scores)  # best on top
    segments, colors = [], []
    for k in order:
        values, _ = observed[k]
        ys = [scales[n][0](values[n]) if n in values else math.nan for n in names]
        ys.append((scores[k] - lo) / span if hi > lo else 0.5)
        for j in range(len(ys) - 1):
            if math.isfinite(ys[j]) and math.isfinite(ys[j + 1]):
                segments.append([(j, ys[j]), (j + 1, ys[j + 1])])
                colors.append(cmap(norm(scores[k])))
    fig = _figure(max(7.0, 1.9 * (len(names) + 1) + 1.5), 4.6)
    ax = fig.add_subplot()
    ax.add_collection(LineCollection(segments, colors=colors, linewidths=1.4, alpha=0.8))
    score_ticks = [(0.0, f"{lo:.4g}"), (1.0, f"{hi:.4g}")] if hi > lo else [(0.5, f"{lo:.4g}")]
    columns = [*names, _metric(results)]
    for j, name in enumerate(columns):
        ax.axvline(j, color="black", lw=0.8)
        ticks = scales[name][1] if name in scales else score_ticks
        for y, text in ticks:
            ax.plot([j - 0.03, j], [y, y], color="black", lw=0.8)
            ax.text(j + 0.04, y, text, fontsize=8, va="center", ha="left")
    ax.set_xticks(range(len(columns)), [_short(n, 22) for n in columns], fontsize=9)
    ax.tick_params(axis="x", length=0)
    ax.xaxis.set_ticks_position("top")
    ax.set_xlim(-0.15, len(columns) - 0.55)
    ax.set_ylim(-0.06, 1.06)
    ax.set_yticks([])
    for side in ("left", "right", "top", "bottom"):
        ax.spines[side].set_visible(False)
    fig.colorbar(ScalarMappable(norm, cmap), ax=ax, label=_metric(results), shrink=0.9)
    shown = str(scored)
    if scored > len(trials):
        shown = f"{len(trials)} of {scored}: the best and a random sample"
    caption = (
        f"One line per scored, stable trial ({shown}), coloured by {_metric(results)} "
        f"(brightest is best); log-uniform parameters on a log axis, choices as evenly "
        "spaced ticks."
    )
    return fig, caption


def importance(results: Mapping[str, Any], config: Mapping[str, Any]) -> tuple[Any, str]:
    """Parameter importances by Optuna's fANOVA evaluator over the complete trials."""
    import optuna
    from optuna.importance import FanovaImportanceEvaluator
    from optuna.trial import TrialState

    complete = [
        t for t in study_trials(results, config, details=False) if t.state == TrialState.COMPLETE
    ]
    if len(complete) < 3:
        raise NoPlot(
            f"not enough trials: parameter importances need at least 3 complete, stable "
            f"trials, this sweep has {len(complete)}"
        )
    varying = [
        name
        for name in dict.fromkeys(n for t in complete for n in t.params)
        if len({repr(t.params.get(name)) for t in complete}) > 1
    ]
    if len(varying) < 2:
        which = f" ({varying[0]})" if varying else ""
        raise NoPlot(
            f"not enough varying parameters: only {len(varying)}{which} varies among the "
            "complete trials; importances compare two or more"
        )
    fitted = f"the {len(complete)} complete, stable trials"
    if len(complete) > MAX_IMPORTANCE_TRIALS:
        import random

        fitted = f"a random sample of {MAX_IMPORTANCE_TRIALS} of the {len(complete)} complete"
        complete = random.Random(0).sample(complete, MAX_IMPORTANCE_TRIALS)
    options: dict[str, Any] = {"seed": 0}
    if len(complete) > FANOVA_FULL_DEPTH_TRIALS:
        options["max_depth"] = 6
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction=direction(results.get("mode")))
    study.add_trials(complete)
    shares = optuna.importance.get_param_importances(
        study, evaluator=FanovaImportanceEvaluator(**options)
    )
    if not shares:
        raise NoPlot("Optuna's fANOVA found no parameter shared by the complete trials")
    items = sorted(shares.items(), key=lambda kv: kv[1])
    fig = _figure(7, 1.2 + 0.45 * len(items))
    ax = fig.add_subplot()
    bars = ax.barh([_short(n, 28) for n, _ in items], [v for _, v in items], color="tab:blue")
    ax.bar_label(bars, labels=[f"{v:.2f}" for _, v in items], padding=3, fontsize=8)
    ax.set_xlim(0, max(1.0, max(v for _, v in items) * 1.15))
    ax.set_xlabel(f"importance for {_metric(results)} (shares sum to 1)")
    ax.grid(axis="x", alpha=0.3)
    depth = ", trees of depth 6" if "max_depth" in options else ""
    caption = (
        f"fANOVA (Optuna's FanovaImportanceEvaluator, seed 0{depth}): a random forest fitted "
        f"to {fitted}; each bar is the share of the "
        "score's variance that parameter explains on its own."
    )
    if len(complete) < RELIABLE_IMPORTANCE_TRIALS:
        caption = (
            f"Unreliable: fitted to only {len(complete)} trials (about "
            f"{RELIABLE_IMPORTANCE_TRIALS} or more are needed for stable shares); another "
            "seed or a few more trials can reorder the bars. " + caption
        )
        ax.set_title(f"unreliable: only {len(complete)} trials", color="tab:red", fontsize=9)
    return fig, caption


def _busy(intervals: list[tuple[float, float]]) -> float:
    """Seconds covered by the union of ``intervals``."""
    total, end = 0.0, -math.inf
    for a, b in sorted(intervals):
        if b > end:
            total += b - max(a, end)
            end = b
    return total


def timeline(results: Mapping[str, Any], config: Mapping[str, Any]) -> tuple[Any, str] | None:
    """Which worker ran which trial when: a row per worker, a bar per trial from its start
    to its end (coloured by how it ended), so that idle gaps show; None before any trial
    started."""
    from matplotlib.patches import Patch

    bars = [
        (str(t["worker"]), float(t["started"]), float(t["finished"]), t)
        for t in results.get("ranking") or []
        if t.get("worker") and _finite(t.get("started")) and _finite(t.get("finished"))
        and t["finished"] >= t["started"]
    ]  # fmt: skip
    if not bars:
        return None
    start = min(b[1] for b in bars)
    end = max(b[2] for b in bars)
    workers = sorted({b[0] for b in bars})
    span = max(end - start, 1e-9)
    unit, per = ("seconds", 1.0) if span < 180 else ("minutes", 60.0)
    if span > 3 * 3600:
        unit, per = "hours", 3600.0
    row = {w: i for i, w in enumerate(workers)}
    fig = _figure(8, min(12.0, 1.3 + 0.32 * len(workers)))
    ax = fig.add_subplot()
    label = len(bars) <= 40
    # one collection of bars per worker, not an artist per trial: a 10,000-trial timeline
    # drew and laid out in ~12 s with a patch per trial, ~0.3 s with these
    lanes: dict[str, tuple[list[tuple[float, float]], list[str]]] = {}
    for worker, a, b, trial in bars:
        color, _ = _style(trial)
        left, width = (a - start) / per, max((b - a) / per, span / per / 2000)
        ranges, colors = lanes.setdefault(worker, ([], []))
        ranges.append((left, width))
        colors.append(color)
        if label:
            ax.text(left + width / 2, row[worker], f"{trial['trial']}", ha="center",
                    va="center", fontsize=6, color="white")  # fmt: skip
    for worker, (ranges, colors) in lanes.items():
        ax.broken_barh(
            ranges, (row[worker] - 0.35, 0.7), facecolors=colors, edgecolor="white", linewidth=1
        )
    ax.set_ylim(len(workers) - 0.5, -0.5)  # top to bottom, as barh's inverted axis was
    ax.set_yticks(range(len(workers)), [_short(w, 24) for w in workers], fontsize=8)
    ax.set_xlabel(f"{unit} since the first trial started")
    ax.grid(axis="x", alpha=0.3)
    present = {"unstable" if t.get("unstable") else str(t.get("status")) for *_, t in bars}
    handles = [Patch(color=c, label=k) for k, (c, _) in _STATUS_STYLE.items() if k in present]
    if len(handles) > 1:
        ax.legend(handles=handles, loc="lower right", fontsize=7)
    busy = sum(_busy([(a, b) for w, a, b, _ in bars if w == worker]) for worker in workers)
    share = busy / (span * len(workers))
    who = "The worker was" if len(workers) == 1 else f"The {len(workers)} workers were"
    caption = (
        f"Each bar is a trial (its number inside) on the worker that last ran it, from its "
        f"start to its end; gaps are idle time. {who} busy {share:.0%} of the "
        f"{span / per:.3g} {unit} from the first start to the last end."
    )
    return fig, caption


#: Trials drawn across the rungs at most (the ones that went furthest first).
MAX_RUNG_TRIALS = 200


def rungs(results: Mapping[str, Any], config: Mapping[str, Any]) -> tuple[Any, str] | None:
    """Each trial's score at each rung of a successive-halving pruner, a panel per bracket
    with rungs: a grey line through a trial's rungs, a green dot where it was promoted, a
    red × where it was stopped; None without such a pruner (no section)."""
    listed = results.get("rungs")
    if listed is None:
        return None
    by_bracket: dict[int, list[Mapping[str, Any]]] = {}
    for rung in listed:
        by_bracket.setdefault(int(rung["bracket"]), []).append(rung)
    panels = {b: r for b, r in sorted(by_bracket.items()) if any(x["reached"] for x in r)}
    if not panels:
        raise NoPlot("no trial has reached a rung")
    fig = _figure(min(4.0 + 3.2 * len(panels), 13.0), 4.4)
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    promoted_total = stopped_total = 0
    for ax, (bracket, rungs_of) in zip(axes, panels.items(), strict=True):
        paths: dict[int, list[tuple[int, float, bool]]] = {}
        for x, rung in enumerate(rungs_of):
            for entry in rung["trials"]:
                if _finite(entry.get("score")):
                    paths.setdefault(int(entry["trial"]), []).append(
                        (x, float(entry["score"]), bool(entry["promoted"]))
                    )
        furthest = sorted(paths, key=lambda t: (-len(paths[t]), t))[:MAX_RUNG_TRIALS]
        for trial in furthest:
            xs, ys, kept = zip(*paths[trial], strict=True)
            ax.plot(xs, ys, color="tab:gray", lw=0.7, alpha=0.45, zorder=1)
            for x, y, k in zip(xs, ys, kept, strict=True):
                if k:
                    promoted_total += 1
                    ax.scatter(x, y, color="tab:green", s=16, zorder=3)
                else:
                    stopped_total += 1
                    ax.scatter(x, y, color="tab:red", marker="x", s=22, lw=1.2, zorder=3)
        ax.set_xticks(range(len(rungs_of)))
        ax.set_xticklabels(
            [f"{r['where']}\n{r['promoted']}/{r['reached']} on" for r in rungs_of], fontsize=7
        )
        if len(panels) > 1:
            ax.set_title(f"bracket {bracket}", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"{_metric(results)} at the rung ({_better(results)})")
    caption = (
        "Each trial's score at each rung of the successive-halving pruner (inside fold 0 its "
        "best epoch so far; after a fold its mean over the folds done), joined by a line: "
        f"promoted (green, {promoted_total}) or stopped (red ×, {stopped_total}); under each "
        "rung, how many of the trials that reached it went on."
    )
    return fig, caption


PLOTS: tuple[tuple[str, str, Callable[..., tuple[Any, str] | None]], ...] = (
    ("history", "Optimisation history", history),
    ("learning_curves", "Learning curves", learning_curves),
    ("rungs", "Successive-halving rungs", rungs),
    ("timeline", "Workers over time", timeline),
    ("folds", "Scores of every run", fold_scores),
    ("parallel", "Parallel coordinates", parallel_coordinates),
    ("importance", "Parameter importances", importance),
)


def render_plots(results: Mapping[str, Any], config: Mapping[str, Any]) -> list[Plot]:
    """Every plot of the report, as PNG bytes or a note; never raises for one plot. A plot
    whose draw function returns None (nothing of its kind in the results) is left out."""
    out = []
    for key, title, draw in PLOTS:
        plot = Plot(key, title)
        try:
            drawn = draw(results, config)
            if drawn is None:
                continue
            fig, plot.caption = drawn
            plot.png = png_bytes(fig)
        except NoPlot as reason:
            plot.note = str(reason)
        except Exception as exc:
            log.warning("the %s plot could not be drawn: %s: %s", key, type(exc).__name__, exc)
            plot.note = f"could not be drawn: {type(exc).__name__}: {exc}"
        out.append(plot)
    return out
