"""The monitor page's latency chart: p50/p95/p99 per hour as SVG geometry (pure; the template
draws it, with a table of the same numbers for screen readers)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from zoneinfo import ZoneInfo

from uptally.clock import Millis

WIDTH, HEIGHT = 720, 220
LEFT, RIGHT, TOP, BOTTOM = 56, 12, 12, 28
PERCENTILES = ("p50", "p95", "p99")
HOUR_MS = 3_600_000


@dataclass(frozen=True, slots=True)
class Hour:
    at: Millis
    p50: float | None
    p95: float | None
    p99: float | None
    count: int


@dataclass(frozen=True, slots=True)
class Tick:
    at: float  # pixels along the axis
    label: str


@dataclass(frozen=True, slots=True)
class Line:
    name: str  # p50, p95, p99
    paths: list[str]  # SVG polyline points, one per run of consecutive hours
    dots: list[tuple[float, float]]  # hours with no neighbour, drawn as dots


@dataclass(frozen=True, slots=True)
class Chart:
    location: str
    width: int
    height: int
    lines: list[Line]
    x_ticks: list[Tick]
    y_ticks: list[Tick]
    hours: list[Hour]  # the table: the same numbers as the drawing
    plot: tuple[int, int, int, int]  # left, top, right, bottom of the plotting area


def nice_top(value: float) -> float:
    """A round upper bound for the y axis (1, 2, 2.5 or 5 times a power of ten)."""
    if value <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * power:
            return float(step * power)
    return float(10 * power)  # pragma: no cover


def ms_text(value: float) -> str:
    if value >= 1000:
        return f"{value / 1000:.3g} s"
    return f"{value:.3g} ms"


def chart(
    location: str, hours: Sequence[Hour], since: Millis, until: Millis, zone: ZoneInfo
) -> Chart:
    right, bottom = WIDTH - RIGHT, HEIGHT - BOTTOM
    highest = max((h.p99 or h.p95 or h.p50 or 0.0 for h in hours), default=0.0)
    top_value = nice_top(highest * 1.05)
    span = max(until - since, 1)

    def x(at: Millis) -> float:
        return round(LEFT + (at + HOUR_MS / 2 - since) / span * (right - LEFT), 1)

    def y(value: float) -> float:
        return round(bottom - value / top_value * (bottom - TOP), 1)

    lines = []
    for name in PERCENTILES:
        runs: list[list[tuple[float, float]]] = []
        previous: Millis | None = None
        for hour in hours:
            value = getattr(hour, name)
            if value is None:
                previous = None
                continue
            if previous is None or hour.at - previous > HOUR_MS:
                runs.append([])
            runs[-1].append((x(hour.at), y(value)))
            previous = hour.at
        paths = [" ".join(f"{px},{py}" for px, py in run) for run in runs if len(run) > 1]
        dots = [run[0] for run in runs if len(run) == 1]
        lines.append(Line(name, paths, dots))
    y_ticks = [Tick(y(top_value * i / 4), ms_text(top_value * i / 4)) for i in range(5)]
    return Chart(
        location,
        WIDTH,
        HEIGHT,
        lines,
        _x_ticks(since, until, zone, x),
        y_ticks,
        list(hours),
        (LEFT, TOP, right, bottom),
    )


def _x_ticks(
    since: Millis, until: Millis, zone: ZoneInfo, x: Callable[[Millis], float]
) -> list[Tick]:
    """A tick every 6 hours over a day, at each midnight over a week (in the site's zone)."""
    days = (until - since) > 2 * 86_400_000
    ticks = []
    for at in range(since - since % HOUR_MS + HOUR_MS, until, HOUR_MS):
        local = datetime.fromtimestamp(at / 1000, zone)
        if local.minute == 0 and local.hour % (24 if days else 6) == 0:
            label = local.strftime("%a %d") if days else local.strftime("%H:%M")
            ticks.append(Tick(x(at - HOUR_MS // 2), label))
    return ticks
