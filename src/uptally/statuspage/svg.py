"""Server-rendered SVG: the 90-day uptime bar, response-time charts and shields-style badges."""

from __future__ import annotations

import math
from collections.abc import Sequence
from html import escape

from uptally.statuspage.days import DayCell

_BADGE_COLORS = {
    "green": "#2e7d32",
    "yellow": "#a06500",
    "orange": "#c2410c",
    "red": "#c62828",
    "blue": "#1f5fbf",
    "grey": "#6b7280",
}
# Verdana 11px advance widths of common characters (what shields.io badges are drawn with).
_NARROW = set("ijlI.,:;!|'` ")
_WIDE = set("mwMW%@")


def _text_width(text: str) -> float:
    width = 0.0
    for char in text:
        if char in _NARROW:
            width += 3.6
        elif char in _WIDE:
            width += 10.0
        elif char.isupper() or char.isdigit():
            width += 7.5
        else:
            width += 6.6
    return width


def badge(label: str, message: str, color: str) -> str:
    """A flat badge like shields.io's: grey label on the left, coloured message on the right."""
    fill = _BADGE_COLORS.get(color, color)
    left = round(_text_width(label) + 10)
    right = round(_text_width(message) + 10)
    total = left + right
    label_x, message_x = left / 2, left + right / 2
    text = f"{label}: {message}"
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{total}" height="20" role="img" '
        f'aria-label="{escape(text)}"><title>{escape(text)}</title>'
        '<linearGradient id="s" x2="0" y2="100%"><stop offset="0" stop-color="#bbb" '
        'stop-opacity=".1"/><stop offset="1" stop-opacity=".1"/></linearGradient>'
        f'<clipPath id="r"><rect width="{total}" height="20" rx="3" fill="#fff"/></clipPath>'
        f'<g clip-path="url(#r)"><rect width="{left}" height="20" fill="#555"/>'
        f'<rect x="{left}" width="{right}" height="20" fill="{fill}"/>'
        f'<rect width="{total}" height="20" fill="url(#s)"/></g>'
        '<g fill="#fff" text-anchor="middle" font-family="Verdana,Geneva,DejaVu Sans,sans-serif" '
        'font-size="11">'
        f'<text x="{label_x}" y="15" fill="#010101" fill-opacity=".3">{escape(label)}</text>'
        f'<text x="{label_x}" y="14">{escape(label)}</text>'
        f'<text x="{message_x}" y="15" fill="#010101" fill-opacity=".3">{escape(message)}</text>'
        f'<text x="{message_x}" y="14">{escape(message)}</text></g></svg>'
    )


def cell_title(cell: DayCell) -> str:
    text = cell.day.date.isoformat()
    if cell.state == "nodata":
        text += f": {'not monitored' if cell.not_monitored_ms else 'no data'}"
    elif cell.state == "operational":
        text += ": no downtime"
    else:
        text += f": {_minutes(cell.down_minutes)} of downtime"
        if cell.major_ms and cell.partial_ms:
            text += f" ({_minutes(cell.major_ms / 60_000)} major)"
    if cell.not_monitored_ms and cell.state != "nodata":
        text += f", {_minutes(cell.not_monitored_ms / 60_000)} not monitored"
    notes = list(cell.notes)
    if cell.reconfigured:
        notes.append(f"configuration changed at {', '.join(cell.reconfigured)}")
    if notes:
        text += " — " + "; ".join(notes)
    return text


def uptime_bar(cells: Sequence[DayCell], label: str) -> str:
    """One rect per day, coloured by the day's worst downtime, each with its own tooltip."""
    width, gap, height = 3, 2, 34
    total = len(cells) * (width + gap) - gap
    # Width, height and corners come from the stylesheet: 90 cells x 50 components add up.
    rects = [
        f'<rect class="day {cell.state}{" changed" if cell.reconfigured else ""}" '
        f'x="{index * (width + gap)}">'
        f"<title>{escape(cell_title(cell))}</title></rect>"
        for index, cell in enumerate(cells)
    ]
    return (
        f'<svg class="bar" viewBox="0 0 {total} {height}" preserveAspectRatio="none" '
        f'role="img" aria-label="{escape(label)}" focusable="false">{"".join(rects)}</svg>'
    )


def latency_chart(
    points: Sequence[tuple[str, float | None]], label: str, width: int = 600, height: int = 80
) -> str:
    """A response-time line over time, with its axes labelled (ms up the side, hours along the
    bottom); `points` are (x label, average ms or None for no data). Before two points have
    data (the first hour) there is no line to draw: it says so instead."""
    values = [v for _, v in points if v is not None]
    if len(values) < 2:
        return f'<p class="chart-empty">{escape(label)}: not enough data yet</p>'
    top = _nice_ceiling(max(values) * 1.1)
    step = width / max(1, len(points) - 1)
    segments: list[list[str]] = [[]]
    for index, (_, value) in enumerate(points):
        if value is None:
            if segments[-1]:
                segments.append([])
            continue
        y = height - (value / top) * (height - 4) - 2
        segments[-1].append(f"{index * step:.1f},{y:.1f}")
    # A lone point (data on both sides missing) is drawn as a dot: a line of no length.
    lines = "".join(
        f'<polyline class="line" points="{" ".join(s if len(s) > 1 else s * 2)}"/>'
        for s in segments
        if s
    )
    average = sum(values) / len(values)
    summary = f"{label}: average {average:.0f} ms, highest {max(values):.0f} ms"
    middle = points[len(points) // 2][0]
    # Text inside the stretched SVG would be distorted: the axis labels are HTML around it.
    return (
        f'<figure class="chart"><div class="plot">'
        f'<div class="y-axis" aria-hidden="true"><span>{top:g} ms</span>'
        f"<span>{top / 2:g} ms</span><span>0 ms</span></div>"
        f'<svg viewBox="0 0 {width} {height}" preserveAspectRatio="none" role="img" '
        f'aria-label="{escape(summary)}" focusable="false"><title>{escape(summary)}</title>'
        f'<line class="grid" x1="0" y1="{height / 2:.1f}" x2="{width}" y2="{height / 2:.1f}"/>'
        f'<line class="axis" x1="0" y1="{height - 1}" x2="{width}" y2="{height - 1}"/>'
        f"{lines}</svg></div>"
        f'<div class="x-axis" aria-hidden="true"><span>{escape(points[0][0])}</span>'
        f"<span>{escape(middle)}</span><span>{escape(points[-1][0])}</span></div></figure>"
    )


def _nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 times a power of ten at or above `value` (an axis top)."""
    if value <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    return next(power * f for f in (1.0, 2.0, 2.5, 5.0, 10.0) if power * f >= value)


def _minutes(value: float) -> str:
    if value < 1:
        return f"{value * 60:.0f} s"
    if value < 120:
        return f"{value:.0f} min"
    return f"{value / 60:.1f} h"
