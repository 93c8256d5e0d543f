"""The report page's building blocks: escaping, numbers and values for cells, status
badges, inline PNG images, tables and durations."""

from __future__ import annotations

import base64
import html
import json
import math
from typing import Any

from smptune.results.plot_base import DPI, SHOWN_DPI


def esc(value: Any) -> str:
    return html.escape(str(value), quote=True)


def finite(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def num(value: Any, digits: int = 4) -> str:
    if finite(value):
        return f"{value:.{digits}g}"
    return "–" if value is None else esc(value)


def value_cell(value: Any) -> str:
    """A parameter value for a table cell."""
    if isinstance(value, float):
        return num(value)
    if isinstance(value, list | dict) or value is None or isinstance(value, bool):
        return esc(json.dumps(value))
    return esc(value)


def badge(status: Any) -> str:
    status = str(status or "pending")
    css = status if status.isidentifier() else "pending"
    return f'<span class="badge {css}">{esc(status)}</span>'


def img(png: bytes, alt: str, scale: float = SHOWN_DPI / DPI) -> str:
    """An inline PNG shown at ``scale`` of its pixel width (plots are drawn at twice the size
    they are shown, for high-density screens)."""
    data = base64.b64encode(png).decode("ascii")
    width = ""
    if png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) >= 24:
        width = f' width="{round(int.from_bytes(png[16:20], "big") * scale)}"'
    return f'<img src="data:image/png;base64,{data}" alt="{esc(alt)}"{width}>'


def html_table(
    header: list[str], rows: list[list[str]], classes: dict[int, str] | None = None
) -> str:
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


def duration_text(seconds: float) -> str:
    """``4.2 s``, ``42 s``, ``12 min``, ``3.4 h``: one way for every duration on the page."""
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 90 * 60:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
