"""The report's plots of trials and runs (history, learning curves, rungs, workers, every
run's score), and :func:`render_plots`, which draws every plot of the report.

Drawn with matplotlib's Agg canvas (no display, no pyplot state). Each plot reads the
:class:`~.summary.SweepResults` and the sweep's config; the plots over the search space are
in :mod:`.plots_space`. :func:`render_plots` draws them all to PNG
bytes; a plot that cannot say anything yet (too few trials) or fails to draw carries a note
instead, so the report always has these sections: the optimisation history, the learning
curves, every run's score, parallel coordinates and parameter importances. The learning
curves are the exception: results without any (an older results.json, a trainable that
reports no epochs) have no such section at all.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

from smptune.config import SweepConfig
from smptune.records import TrialStatus
from smptune.results.plot_base import (
    STATUS_STYLE,
    NoPlot,
    Plot,
    better,
    figure,
    is_finite,
    legend,
    metric_name,
    png_bytes,
    scored_trials,
    short,
    style,
)
from smptune.results.plots_pareto import pareto_front
from smptune.results.plots_space import importance, parallel_coordinates
from smptune.results.summary import LearningCurve, RungResult, SweepResults
from smptune.search.scoring import run_index

log = logging.getLogger("smptune.report")

#: Trials shown in the per-run plot (best first); every trial is in trials.csv.
MAX_FOLD_TRIALS = 30


def history(results: SweepResults, config: SweepConfig) -> tuple[Any, str]:
    """Score of each trial in the order the trials finished, and the best so far."""
    from matplotlib.ticker import MaxNLocator

    scored = [
        (t, float(t.score or 0.0))
        for t in sorted(
            scored_trials(results),
            key=lambda t: (t.finished if is_finite(t.finished) else math.inf, t.trial),
        )
    ]
    if not scored:
        raise NoPlot("no trial has a score yet")
    fig = figure(8, 4.2)
    ax = fig.add_subplot()
    groups: dict[str, list[tuple[int, float]]] = {}
    for x, (t, score) in enumerate(scored, start=1):
        groups.setdefault("unstable" if t.unstable else t.status.value, []).append((x, score))
    for status, points in groups.items():
        color, marker = style(status)
        xs, ys = zip(*points, strict=True)
        ax.scatter(xs, ys, color=color, marker=marker, s=28, zorder=3)
    sign = -1.0 if results.mode == "min" else 1.0
    best_x, best_y, best = [], [], None
    for x, (t, score) in enumerate(scored, start=1):
        improves = best is None or sign * score > sign * best
        if t.status is TrialStatus.COMPLETE and not t.unstable and improves:
            best = score
        if best is not None:
            best_x.append(x)
            best_y.append(best)
    if best_x:
        ax.step(best_x, best_y, where="post", color="tab:green", lw=2, label="best so far")
    chosen = results.best.trial if results.best else None
    for x, (t, score) in enumerate(scored, start=1):
        if t.trial == chosen:
            ax.scatter([x], [score], marker="*", s=220, color="gold", ec="black", zorder=4)
            ax.annotate(
                f"best: trial {chosen}",
                (x, score),
                textcoords="offset points",
                xytext=(6, 8),
                fontsize=8,
            )
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("trials, in the order they finished")
    ax.set_ylabel(f"{metric_name(results)} ({better(results)})")
    ax.grid(alpha=0.3)
    legend(ax, set(groups))
    unscored = len(results.ranking) - len(scored)
    caption = (
        f"Score of each of the {len(scored)} scored trials in the order they finished; the "
        "green line is the best complete trial so far, the star the trial chosen as best."
    )
    if unscored:
        caption += f" {unscored} trial(s) without a score (failed, skipped, ...) are not shown."
    return fig, caption


def _runs(entry: LearningCurve) -> list[tuple[int, list[float]]]:
    """``(run index, score per epoch)`` of each run of a learning-curve entry with at least
    one finite score, in run order (NaN for an epoch without a finite score)."""
    out = []
    for run, curve in entry.curves.items():
        ys = [float(v) if is_finite(v) else math.nan for v in curve or []]
        if any(math.isfinite(y) for y in ys):
            out.append((int(run), ys))
    return sorted(out, key=lambda r: r[0])


def _stop_point(curve: list[float], epochs: Any) -> tuple[int, float] | None:
    """Where a run stopped after ``epochs`` epochs: its last finite score up to there."""
    last = min(len(curve), int(epochs)) if is_finite(epochs) else len(curve)
    for epoch in range(last, 0, -1):
        if math.isfinite(curve[epoch - 1]):
            return epoch, curve[epoch - 1]
    return None


def learning_curves(results: SweepResults, config: SweepConfig) -> tuple[Any, str] | None:
    """Validation score per epoch of each run of the best complete trials (solid, a colour per
    trial) and of the trials stopped inside a run (dashed grey, × where they stopped); None
    when the results hold no learning curves (no section in the report)."""
    from matplotlib import colormaps
    from matplotlib.lines import Line2D
    from matplotlib.ticker import MaxNLocator

    listed = [c for c in results.learning_curves if c.curves]
    if not listed:
        return None
    n_randoms = results.n_randoms
    complete = [c for c in listed if c.status is TrialStatus.COMPLETE and not c.partial]
    stopped = [c for c in listed if c not in complete]
    fig = figure(8, 4.6)
    ax = fig.add_subplot()
    drawn = 0
    for c in stopped:  # beneath the complete trials
        partial = c.partial
        stop_run = None if partial is None else run_index(partial.fold, partial.repeat, n_randoms)
        for run, ys in _runs(c):
            drawn += 1
            ax.plot(range(1, len(ys) + 1), ys, color="tab:gray", ls="--", lw=0.9, alpha=0.6)
            point = _stop_point(ys, partial.epochs) if partial and run == stop_run else None
            if point is not None:
                ax.scatter(*point, marker="x", s=30, color="dimgray", lw=1.2, zorder=3)
    palette = colormaps["tab10"]
    handles: list[Any] = []
    for i, c in enumerate(complete):
        color = palette(i % palette.N)
        for _, ys in _runs(c):
            drawn += 1
            ax.plot(range(1, len(ys) + 1), ys, color=color, lw=1.2, alpha=0.85, zorder=2)
        label = f"trial {c.trial} (rank {c.rank})"
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
    ax.set_ylabel(f"validation {metric_name(results)} ({better(results)})")
    ax.grid(alpha=0.3)
    parts = []
    if complete:
        best = "best complete trial" if len(complete) == 1 else "best complete trials"
        parts.append(f"the {len(complete)} {best} (solid, a colour per trial)")
    if stopped:
        trials = "trial" if len(stopped) == 1 else "trials"
        parts.append(f"{len(stopped)} {trials} stopped inside a run (dashed, × where they stopped)")
    caption = (
        f"Validation {metric_name(results)} per epoch of each run (a fold, or a fold with one "
        f"seed): {' and '.join(parts)}; a gap is an epoch without a finite score."
    )
    return fig, caption


def fold_scores(results: SweepResults, config: SweepConfig) -> tuple[Any, str]:
    """Each run's score (fold × seed) per trial, best trials first."""
    import numpy as np

    ranked = [t for t in results.ranking if t.run_scores]
    if not ranked:
        raise NoPlot("no run has finished yet")
    shown = ranked[:MAX_FOLD_TRIALS]
    fig = figure(max(6.0, 1.0 + 0.36 * len(shown)), 4.4)
    ax = fig.add_subplot()
    unstable_runs = 0
    for i, t in enumerate(shown):
        scores = list(t.run_scores.values())
        finite = [s for s in scores if math.isfinite(s)]
        color, _ = style(t.status.value)
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
        if t.score is not None and is_finite(t.score):
            ax.scatter([i], [t.score], marker="D", s=30, color="black", zorder=4)
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
    ax.set_xticks(range(len(shown)), [f"#{t.trial}" for t in shown], fontsize=8)
    ax.set_xlim(-0.7, len(shown) - 0.3)
    ax.set_xlabel("trials, best first (#trial number)")
    ax.set_ylabel(f"run {metric_name(results)} ({better(results)})")
    ax.grid(axis="y", alpha=0.3)
    caption = (
        "Each dot is one run (a fold, or a fold with one seed) at its best epoch; a box spans "
        "the quartiles of a trial's runs, the black diamond is the trial's score (the mean of "
        "its stable runs)."
    )
    statuses = {t.status.value for t in shown}
    if "pruned" in statuses:
        caption += " Grey dots: pruned trials."
    if "stopped" in statuses:
        caption += " Orange dots: trials stopped by the time budget."
    if any(not TrialStatus(s).scored for s in statuses):
        caption += " Purple dots: runs of trials that failed or were cancelled later."
    if unstable_runs:
        caption += f" Red crosses at the bottom: {unstable_runs} unstable run(s) (NaN or ±inf)."
    if len(ranked) > len(shown):
        caption += f" The best {len(shown)} of {len(ranked)} trials with runs are shown."
    return fig, caption


def _busy(intervals: list[tuple[float, float]]) -> float:
    """Seconds covered by the union of ``intervals``."""
    total, end = 0.0, -math.inf
    for a, b in sorted(intervals):
        if b > end:
            total += b - max(a, end)
            end = b
    return total


def timeline(results: SweepResults, config: SweepConfig) -> tuple[Any, str] | None:
    """Which worker ran which trial when: a row per worker, a bar per trial from its start
    to its end (coloured by how it ended), so that idle gaps show; None before any trial
    started."""
    from matplotlib.patches import Patch

    bars = [
        (str(t.worker), t.started, t.finished, t)
        for t in results.ranking
        if t.worker and t.started is not None and t.finished is not None
        and is_finite(t.started) and is_finite(t.finished) and t.finished >= t.started
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
    fig = figure(8, min(12.0, 1.3 + 0.32 * len(workers)))
    ax = fig.add_subplot()
    label = len(bars) <= 40
    # one collection of bars per worker, not an artist per trial: a 10,000-trial timeline
    # drew and laid out in ~12 s with a patch per trial, ~0.3 s with these
    lanes: dict[str, tuple[list[tuple[float, float]], list[str]]] = {}
    for worker, a, b, trial in bars:
        color, _ = style(trial.status.value, trial.unstable)
        left, width = (a - start) / per, max((b - a) / per, span / per / 2000)
        ranges, colors = lanes.setdefault(worker, ([], []))
        ranges.append((left, width))
        colors.append(color)
        if label:
            ax.text(left + width / 2, row[worker], f"{trial.trial}", ha="center",
                    va="center", fontsize=6, color="white")  # fmt: skip
    for worker, (ranges, colors) in lanes.items():
        ax.broken_barh(
            ranges, (row[worker] - 0.35, 0.7), facecolors=colors, edgecolor="white", linewidth=1
        )
    ax.set_ylim(len(workers) - 0.5, -0.5)  # top to bottom, as barh's inverted axis was
    ax.set_yticks(range(len(workers)), [short(w, 24) for w in workers], fontsize=8)
    ax.set_xlabel(f"{unit} since the first trial started")
    ax.grid(axis="x", alpha=0.3)
    present = {"unstable" if t.unstable else t.status.value for *_, t in bars}
    handles = [Patch(color=c, label=k) for k, (c, _) in STATUS_STYLE.items() if k in present]
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


def rungs(results: SweepResults, config: SweepConfig) -> tuple[Any, str] | None:
    """Each trial's score at each rung of a successive-halving pruner, a panel per bracket
    with rungs: a grey line through a trial's rungs, a green dot where it was promoted, a
    red × where it was stopped; None without such a pruner (no section)."""
    listed = results.rungs
    if listed is None:
        return None
    by_bracket: dict[int, list[RungResult]] = {}
    for rung in listed:
        by_bracket.setdefault(rung.bracket, []).append(rung)
    panels = {b: r for b, r in sorted(by_bracket.items()) if any(x.reached for x in r)}
    if not panels:
        raise NoPlot("no trial has reached a rung")
    fig = figure(min(4.0 + 3.2 * len(panels), 13.0), 4.4)
    axes = fig.subplots(1, len(panels), sharey=True, squeeze=False)[0]
    promoted_total = stopped_total = 0
    for ax, (bracket, rungs_of) in zip(axes, panels.items(), strict=True):
        paths: dict[int, list[tuple[int, float, bool]]] = {}
        for x, rung in enumerate(rungs_of):
            for entry in rung.trials:
                if entry.score is not None and is_finite(entry.score):
                    paths.setdefault(entry.trial, []).append((x, entry.score, entry.promoted))
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
            [f"{r.where}\n{r.promoted}/{r.reached} on" for r in rungs_of], fontsize=7
        )
        if len(panels) > 1:
            ax.set_title(f"bracket {bracket}", fontsize=9)
        ax.grid(alpha=0.3)
    axes[0].set_ylabel(f"{metric_name(results)} at the rung ({better(results)})")
    caption = (
        "Each trial's score at each rung of the successive-halving pruner (inside fold 0 its "
        "best epoch so far; after a fold its mean over the folds done), joined by a line: "
        f"promoted (green, {promoted_total}) or stopped (red ×, {stopped_total}); under each "
        "rung, how many of the trials that reached it went on."
    )
    return fig, caption


PLOTS: tuple[tuple[str, str, Callable[..., tuple[Any, str] | None]], ...] = (
    ("history", "Optimisation history", history),
    ("pareto", "Pareto front", pareto_front),
    ("learning_curves", "Learning curves", learning_curves),
    ("rungs", "Successive-halving rungs", rungs),
    ("timeline", "Workers over time", timeline),
    ("folds", "Scores of every run", fold_scores),
    ("parallel", "Parallel coordinates", parallel_coordinates),
    ("importance", "Parameter importances", importance),
)


def render_plots(results: SweepResults, config: SweepConfig) -> list[Plot]:
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
