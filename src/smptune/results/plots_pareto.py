"""The Pareto plot of a multi-objective sweep: every complete trial on its first two
objectives, the non-dominated front joined and highlighted, the selected trial ringed and the
``select.where`` bound drawn."""

from __future__ import annotations

from typing import Any

from smptune.results.plot_base import NoPlot, figure
from smptune.results.summary import SweepResults

__all__ = ["pareto_front"]


def pareto_front(results: SweepResults, config: Any) -> tuple[Any, str] | None:
    """The scatter with its front; None for a sweep with one objective."""
    pareto = results.pareto
    if pareto is None:
        return None
    if not pareto.points:
        raise NoPlot("no complete trial reports every objective yet")
    x_name, y_name = pareto.objectives.names[:2]
    fig = figure(7, 4.6)
    ax = fig.add_subplot()
    others = [p for p in pareto.points if p.trial not in pareto.front]
    front = sorted(
        (p for p in pareto.points if p.trial in pareto.front), key=lambda p: p.values[x_name]
    )
    if others:
        ax.scatter(
            [p.values[x_name] for p in others],
            [p.values[y_name] for p in others],
            color="tab:gray",
            s=24,
            alpha=0.7,
            label="dominated",
        )
    xs, ys = [p.values[x_name] for p in front], [p.values[y_name] for p in front]
    ax.plot(xs, ys, color="tab:blue", lw=1.5, drawstyle="steps-post", zorder=2)
    ax.scatter(xs, ys, color="tab:blue", s=40, zorder=3, label="Pareto front")
    where = pareto.objectives.select.where
    if where is not None and where.metric in (x_name, y_name):
        line = ax.axvline if where.metric == x_name else ax.axhline
        line(where.bound, color="tab:red", ls="--", lw=1, label=f"select: {where}")
    chosen = pareto.point(pareto.selected) if pareto.selected is not None else None
    if chosen is not None:
        ax.scatter(
            [chosen.values[x_name]],
            [chosen.values[y_name]],
            s=160,
            facecolors="none",
            edgecolors="tab:green",
            linewidths=2,
            zorder=4,
            label=f"selected (trial {chosen.trial})",
        )
    modes = dict(zip(pareto.objectives.names, pareto.objectives.modes, strict=True))
    ax.set_xlabel(f"{x_name} ({'higher' if modes[x_name] == 'max' else 'lower'} is better)")
    ax.set_ylabel(f"{y_name} ({'higher' if modes[y_name] == 'max' else 'lower'} is better)")
    ax.legend(loc="best", fontsize=8)
    ax.grid(alpha=0.3)
    caption = (
        f"{len(pareto.points)} complete trials, {len(pareto.front)} on the Pareto front; the "
        f"final model is the {pareto.objectives.select}"
    )
    return fig, caption
