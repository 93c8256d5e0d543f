"""The report's plots over the search space: parallel coordinates through each trial's
parameters, and the parameters' importances by Optuna's fANOVA."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from smptune.config import SweepConfig
from smptune.records import TrialStatus
from smptune.results.optuna_export import search_space, study_trials, user_view
from smptune.results.plot_base import NoPlot, figure, metric_name, scored_trials, short
from smptune.results.summary import SweepResults
from smptune.search.adaptive import observe

if TYPE_CHECKING:
    from optuna.distributions import BaseDistribution

#: Lines in the parallel-coordinates plot at most (the best trial and a seeded sample).
MAX_LINES = 1000
#: How the parallel-coordinates plot draws and names the trials that ran out of memory.
INFEASIBLE_LABEL = "infeasible (out of memory)"
#: Above this many complete trials fANOVA's trees are limited to depth 6 (about 2 s, however
#: many trials; Optuna's default depth takes about 20 ms per trial).
FANOVA_FULL_DEPTH_TRIALS = 200
#: Complete trials fANOVA is fitted to at most (a seeded random sample beyond that).
MAX_IMPORTANCE_TRIALS = 2000
#: Below this many complete trials fANOVA's importances are noted as unreliable.
RELIABLE_IMPORTANCE_TRIALS = 20


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
        ticks = [(i * step, short(labels.get(repr(c), c))) for i, c in enumerate(choices)]
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


def parallel_coordinates(results: SweepResults, config: SweepConfig) -> tuple[Any, str]:
    """One line per scored, stable trial through its parameters and its score; a dashed
    red one per infeasible (out-of-memory) trial through its parameters (the infeasible
    region)."""
    import numpy as np
    from matplotlib import colormaps
    from matplotlib.cm import ScalarMappable
    from matplotlib.collections import LineCollection
    from matplotlib.colors import Normalize

    trials = [t for t in scored_trials(results) if not t.unstable]
    infeasible = [t for t in results.ranking if t.status is TrialStatus.INFEASIBLE][:MAX_LINES]
    if not trials and not infeasible:
        raise NoPlot("no stable trial has a score yet")
    scored = len(trials)
    if scored > MAX_LINES:  # ranked best first: keep the best, sample the rest
        import random

        trials = [trials[0], *random.Random(0).sample(trials[1:], MAX_LINES - 1)]
    space = search_space(config)
    n_scored = len(trials)
    trials = [*trials, *infeasible]  # the scored ones first: ``observed[:n_scored]``
    observed = [observe(space, t.params, view=user_view) for t in trials]
    axes: dict[str, BaseDistribution] = {}
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
            raw = t.params.get(key.partition("|")[0])
            text = json.dumps(raw) if isinstance(raw, list | dict | bool) or raw is None else raw
            labels.setdefault(key, {})[repr(internal)] = str(text)
    scales = {name: _axis(dist, labels[name]) for name, dist in axes.items()}
    scores = np.array([t.score for t in trials[:n_scored]], dtype=float)
    lo, hi = (float(scores.min()), float(scores.max())) if n_scored else (0.0, 0.0)
    span = hi - lo or 1.0
    cmap = colormaps["viridis_r" if results.mode == "min" else "viridis"]
    norm = Normalize(lo, hi if hi > lo else lo + 1e-12)
    order = np.argsort(scores if results.mode != "min" else -scores)  # best on top
    segments, colors = [], []
    for k in order:
        values, _ = observed[k]
        ys = [scales[n][0](values[n]) if n in values else math.nan for n in names]
        ys.append((scores[k] - lo) / span if hi > lo else 0.5)
        for j in range(len(ys) - 1):
            if math.isfinite(ys[j]) and math.isfinite(ys[j + 1]):
                segments.append([(j, ys[j]), (j + 1, ys[j + 1])])
                colors.append(cmap(norm(scores[k])))
    fig = figure(max(7.0, 1.9 * (len(names) + 1) + 1.5), 4.6)
    ax = fig.add_subplot()
    ax.add_collection(LineCollection(segments, colors=colors, linewidths=1.4, alpha=0.8))
    if infeasible:
        ax.add_collection(_infeasible_lines(observed[n_scored:], names, scales))
        ax.legend(loc="lower right", fontsize=8, framealpha=0.8)
    score_ticks = [(0.0, f"{lo:.4g}"), (1.0, f"{hi:.4g}")] if hi > lo else [(0.5, f"{lo:.4g}")]
    columns = [*names, metric_name(results)]
    for j, name in enumerate(columns):
        ax.axvline(j, color="black", lw=0.8)
        ticks = scales[name][1] if name in scales else score_ticks
        for y, text in ticks:
            ax.plot([j - 0.03, j], [y, y], color="black", lw=0.8)
            ax.text(j + 0.04, y, text, fontsize=8, va="center", ha="left")
    ax.set_xticks(range(len(columns)), [short(n, 22) for n in columns], fontsize=9)
    ax.tick_params(axis="x", length=0)
    ax.xaxis.set_ticks_position("top")
    ax.set_xlim(-0.15, len(columns) - 0.55)
    ax.set_ylim(-0.06, 1.06)
    ax.set_yticks([])
    for side in ("left", "right", "top", "bottom"):
        ax.spines[side].set_visible(False)
    fig.colorbar(ScalarMappable(norm, cmap), ax=ax, label=metric_name(results), shrink=0.9)
    shown = str(scored)
    if scored > len(trials):
        shown = f"{len(trials)} of {scored}: the best and a random sample"
    caption = (
        f"One line per scored, stable trial ({shown}), coloured by {metric_name(results)} "
        f"(brightest is best); log-uniform parameters on a log axis, choices as evenly "
        "spaced ticks."
    )
    if infeasible:
        caption += (
            f" Dashed red: {INFEASIBLE_LABEL}, {len(infeasible)} trials through "
            "their parameters, with no score: the infeasible region."
        )
    return fig, caption


def _infeasible_lines(
    observed: Sequence[tuple[Mapping[str, Any], Any]],
    names: list[str],
    scales: Mapping[str, tuple[Callable[[Any], float], Any]],
) -> Any:
    """The infeasible trials' dashed lines through their parameters' axes."""
    from matplotlib.collections import LineCollection

    segments: list[list[tuple[float, float]]] = []
    for values, _ in observed:
        ys = [scales[n][0](values[n]) if n in values else math.nan for n in names]
        for j in range(len(ys) - 1):
            if math.isfinite(ys[j]) and math.isfinite(ys[j + 1]):
                segments.append([(j, ys[j]), (j + 1, ys[j + 1])])
        if len(ys) == 1 and math.isfinite(ys[0]):  # one axis: a tick across it
            segments.append([(-0.08, ys[0]), (0.08, ys[0])])
    return LineCollection(
        segments,
        colors="tab:red",
        linestyles=(0, (4, 2)),
        linewidths=1.6,
        alpha=0.9,
        label=INFEASIBLE_LABEL,
    )


def importance(results: SweepResults, config: SweepConfig) -> tuple[Any, str]:
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
    options: dict[str, int] = {"seed": 0}
    if len(complete) > FANOVA_FULL_DEPTH_TRIALS:
        options["max_depth"] = 6
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(direction=results.direction)
    study.add_trials(complete)
    shares = optuna.importance.get_param_importances(
        study, evaluator=FanovaImportanceEvaluator(**options)
    )
    if not shares:
        raise NoPlot("Optuna's fANOVA found no parameter shared by the complete trials")
    items = sorted(shares.items(), key=lambda kv: kv[1])
    fig = figure(7, 1.2 + 0.45 * len(items))
    ax = fig.add_subplot()
    bars = ax.barh([short(n, 28) for n, _ in items], [v for _, v in items], color="tab:blue")
    ax.bar_label(bars, labels=[f"{v:.2f}" for _, v in items], padding=3, fontsize=8)
    ax.set_xlim(0, max(1.0, max(v for _, v in items) * 1.15))
    ax.set_xlabel(f"importance for {metric_name(results)} (shares sum to 1)")
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
