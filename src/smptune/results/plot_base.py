"""What every plot of the report shares: the Agg figure and its PNG bytes, the status
colours and markers, the axis labels, and :class:`Plot` / :class:`NoPlot`."""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from typing import Any

from smptune.results.summary import RankedTrial, SweepResults

#: Pixels per inch of the PNGs; the report shows them at :data:`SHOWN_DPI`.
DPI, SHOWN_DPI = 200, 100
STATUS_STYLE = {
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


def is_finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def scored_trials(results: SweepResults) -> list[RankedTrial]:
    """Trials with a score (complete, pruned or stopped), in ranking order."""
    return [t for t in results.ranking if t.status.scored and is_finite(t.score)]


def style(status: str, unstable: bool = False) -> tuple[str, str]:
    """The colour and marker of a trial that ended in ``status``."""
    return STATUS_STYLE.get("unstable" if unstable else status, ("tab:purple", "o"))


def better(results: SweepResults) -> str:
    return "lower is better" if results.mode == "min" else "higher is better"


def metric_name(results: SweepResults) -> str:
    return results.metric or "score"


def figure(width: float, height: float) -> Any:
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


def legend(ax: Any, present: set[str]) -> None:
    from matplotlib.lines import Line2D

    handles = [
        Line2D([], [], color=color, marker=marker, linestyle="", label=status)
        for status, (color, marker) in STATUS_STYLE.items()
        if status in present
    ]
    if len(handles) > 1:
        ax.legend(handles=handles, loc="best", fontsize=8)


def short(value: Any, width: int = 16) -> str:
    text = str(value)
    return text if len(text) <= width else text[: width - 1] + "…"
