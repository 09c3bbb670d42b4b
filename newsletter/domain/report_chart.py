"""The report's chart of opens and clicks per hour: an SVG string built from two series.

Pure (no I/O) so it can be tested as XML. The drawing has a viewBox and no fixed size, so
it scales to the width it is given (375 px phones included); text and lines use colours
with at least WCAG AA contrast on white, and the two lines differ by dash as well as by
colour, so the chart still reads in grey or for colour-blind readers.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from xml.sax.saxutils import escape, quoteattr

WIDTH, HEIGHT = 360.0, 220.0
LEFT, RIGHT, TOP, BOTTOM = 38.0, 12.0, 34.0, 40.0  # room for ticks, legend, axis title
TICK_EVERY = 24  # hours: one tick a day

TEXT = "#374151"  # 10.3:1 on white
GRID = "#e5e7eb"
AXIS = "#6b7280"  # 4.8:1
OPENS = "#1d4ed8"  # 6.7:1
CLICKS = "#c2410c"  # 5.2:1
FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, sans-serif"


@dataclass(frozen=True)
class Series:
    key: str  # the data-series attribute: what tests and styles find it by
    label: str
    values: Sequence[int]
    colour: str
    dash: str | None = None


def nice_top(peak: int) -> tuple[int, int]:
    """(top, step) of the y axis: whole-number steps of 1, 2 or 5 times a power of ten,
    at most five ticks, the top at or above the peak."""
    if peak <= 0:
        return 1, 1
    raw = peak / 4
    power = 10 ** max(0, math.floor(math.log10(raw))) if raw >= 1 else 1
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    return step * math.ceil(peak / step), step


def _n(value: float) -> str:
    return f"{value:.1f}".rstrip("0").rstrip(".")


def hourly_chart(
    opens: Sequence[int],
    clicks: Sequence[int],
    *,
    title: str = "Opens and clicks per hour",
    id_prefix: str = "chart",
) -> str:
    """Two lines over len(opens) hours (72 for the report), one point per hour at the
    middle of its hour, ticks at every 24 hours."""
    if len(opens) != len(clicks) or not opens:
        raise ValueError("the two series need the same, non-zero number of hours")
    hours = len(opens)
    series = [
        Series("opens", "Opens", opens, OPENS),
        Series("clicks", "Clicks", clicks, CLICKS, dash="5 3"),
    ]
    top, step = nice_top(max(max(opens), max(clicks)))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    bottom = TOP + plot_h

    def x(hour: float) -> float:
        return LEFT + plot_w * hour / hours

    def y(value: float) -> float:
        return bottom - plot_h * value / top

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_n(WIDTH)} {_n(HEIGHT)}" '
        f'role="img" aria-labelledby="{id_prefix}-title {id_prefix}-desc" '
        f'data-hours="{hours}" font-family={quoteattr(FONT)} font-size="13">',
        f'<title id="{id_prefix}-title">{escape(title)}</title>',
        f'<desc id="{id_prefix}-desc">{escape(describe(opens, clicks))}</desc>',
    ]
    for value in range(0, top + 1, step):  # horizontal grid and y labels
        parts.append(
            f'<line x1="{_n(LEFT)}" x2="{_n(LEFT + plot_w)}" y1="{_n(y(value))}" '
            f'y2="{_n(y(value))}" stroke="{GRID if value else AXIS}" stroke-width="1"/>'
        )
        parts.append(
            f'<text x="{_n(LEFT - 5)}" y="{_n(y(value) + 4)}" text-anchor="end" '
            f'fill="{TEXT}">{value}</text>'
        )
    for hour in range(0, hours + 1, TICK_EVERY):  # a line a day and the hour ticks
        parts.append(
            f'<line x1="{_n(x(hour))}" x2="{_n(x(hour))}" y1="{_n(TOP)}" y2="{_n(bottom + 4)}" '
            f'stroke="{GRID if 0 < hour < hours else AXIS}" stroke-width="1"/>'
        )
        anchor = "start" if hour == 0 else "end" if hour == hours else "middle"
        parts.append(
            f'<text class="tick" x="{_n(x(hour))}" y="{_n(bottom + 18)}" '
            f'text-anchor="{anchor}" fill="{TEXT}">{hour} h</text>'
        )
    parts.append(
        f'<text x="{_n(LEFT + plot_w / 2)}" y="{_n(HEIGHT - 4)}" text-anchor="middle" '
        f'fill="{TEXT}">hours after the send started</text>'
    )
    for s in series:
        points = " ".join(f"{_n(x(h + 0.5))},{_n(y(v))}" for h, v in enumerate(s.values))
        dash = f' stroke-dasharray="{s.dash}"' if s.dash else ""
        parts.append(
            f'<polyline data-series="{s.key}" points="{points}" fill="none" '
            f'stroke="{s.colour}" stroke-width="2" stroke-linejoin="round"{dash}/>'
        )
    legend_x = LEFT
    for s in series:  # the legend, above the plot: a line sample and the name
        dash = f' stroke-dasharray="{s.dash}"' if s.dash else ""
        parts.append(
            f'<line x1="{_n(legend_x)}" x2="{_n(legend_x + 22)}" y1="14" y2="14" '
            f'stroke="{s.colour}" stroke-width="2.5"{dash}/>'
        )
        parts.append(
            f'<text class="legend" x="{_n(legend_x + 28)}" y="19" fill="#111827">'
            f"{escape(s.label)}</text>"
        )
        legend_x += 96
    parts.append("</svg>")
    return "\n".join(parts)


def describe(opens: Sequence[int], clicks: Sequence[int]) -> str:
    """The chart in words, for screen readers: totals and the busiest hour of each."""

    def one(name: str, values: Sequence[int]) -> str:
        total = sum(values)
        if not total:
            return f"no {name}"
        peak = max(range(len(values)), key=lambda h: (values[h], -h))
        return f"{total} {name}, most in hour {peak} ({values[peak]})"

    return (
        f"Per hour over the first {len(opens)} hours after the send: "
        f"{one('opens', opens)}; {one('clicks', clicks)}."
    )
