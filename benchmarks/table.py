"""The benchmark table: a measured figure beside its reference, and the aligned text table
``python -m benchmarks`` prints."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass
class Row:
    """One measured figure next to its reference (an ideal, a baseline measured in the same
    run, or a budget), their ratio, and the target for that ratio (``None``: for information).
    """

    figure: str
    measured: float | None
    reference: float | None = None
    unit: str = "s"
    reference_label: str = ""
    max_ratio: float | None = None
    note: str = ""

    @property
    def ratio(self) -> float | None:
        if self.measured is None or not self.reference:
            return None
        return self.measured / self.reference

    @property
    def verdict(self) -> str:
        if self.max_ratio is None or self.ratio is None:
            return ""
        return "pass" if self.ratio <= self.max_ratio else "miss"


def _number(value: float | None, unit: str) -> str:
    if value is None:
        return "--"
    if unit == "B" or abs(value) >= 1000:
        text = f"{value:,.0f}"
    elif abs(value) >= 10:
        text = f"{value:.1f}"
    else:
        text = f"{value:.3g}" if abs(value) < 0.1 else f"{value:.2f}"
    return f"{text} {unit}".rstrip()


def _ratio(value: float | None) -> str:
    if value is None:
        return "--"
    return f"{value:.3f}" if value >= 0.01 else f"{value:.1e}"


def format_table(rows: Sequence[Row]) -> str:
    """The rows as an aligned text table (figure, measured, reference, ratio, target, result)."""
    header = ("figure", "measured", "reference", "ratio", "target", "result")
    lines = [header]
    for r in rows:
        reference = _number(r.reference, r.unit) if r.reference is not None else "--"
        if r.reference_label:
            reference += f" ({r.reference_label})"
        lines.append(
            (
                r.figure,
                _number(r.measured, r.unit) if r.measured is not None else r.note or "--",
                reference,
                _ratio(r.ratio),
                "--" if r.max_ratio is None else f"<= {r.max_ratio:g}",
                r.verdict or "--",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = []
    for n, line in enumerate(lines):
        rest = zip(line[1:], widths[1:], strict=True)
        cells = [line[0].ljust(widths[0])] + [c.rjust(w) for c, w in rest]
        out.append("  ".join(cells).rstrip())
        if n == 0:
            out.append("  ".join("-" * w for w in widths))
    notes = [f"  {r.figure}: {r.note}" for r in rows if r.note and r.measured is not None]
    return "\n".join(out + (["notes:", *notes] if notes else []))


def print_table(rows: Sequence[Row]) -> None:
    print(format_table(rows), flush=True)
