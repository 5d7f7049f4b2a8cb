"""Monthly uptime against the target as an inline SVG bar chart's geometry (pure).

The vertical axis starts just below the lowest of the values and the target, so a month at
99.95 % against 99.9 % is visibly above the line rather than a full bar beside another.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

WIDTH = 640
HEIGHT = 180
LEFT = 72  # room for the axis labels ("99.975 %" whole: figures are never cut)
BOTTOM = 26  # room for the month labels
TOP = 10


@dataclass(frozen=True, slots=True)
class Month:
    label: str  # 2026-11
    short: str  # Nov
    uptime: float | None  # None: nothing of the month was measured
    met: bool | None


@dataclass(frozen=True, slots=True)
class Bar:
    month: Month
    x: float
    y: float
    width: float
    height: float


@dataclass(frozen=True, slots=True)
class Chart:
    width: int
    height: int
    bars: list[Bar]
    target: float
    target_y: float
    ticks: list[tuple[float, str]]  # (y, label)
    left: int
    plot_bottom: float
    label_y: float


def floor_of(values: Sequence[float], target: float) -> float:
    """The axis' lowest value: a margin below the lowest of the values and the target."""
    low = min([*values, target])
    margin = max((100 - low) * 0.25, 0.05)
    return max(0.0, round(low - margin, 3))


def chart(months: Sequence[Month], target: float) -> Chart:
    measured = [m.uptime for m in months if m.uptime is not None]
    bottom = floor_of(measured, target)
    plot_height = HEIGHT - TOP - BOTTOM
    plot_bottom = TOP + plot_height

    def y_of(value: float) -> float:
        return round(plot_bottom - (value - bottom) / (100 - bottom) * plot_height, 2)

    slot = (WIDTH - LEFT) / max(len(months), 1)
    bars: list[Bar] = []
    for i, month in enumerate(months):
        x = round(LEFT + i * slot + slot * 0.18, 2)
        width = round(slot * 0.64, 2)
        if month.uptime is None:
            bars.append(Bar(month, x, plot_bottom, width, 0))
            continue
        top = y_of(month.uptime)
        bars.append(Bar(month, x, top, width, round(max(plot_bottom - top, 1.5), 2)))
    ticks = [(y_of(v), _label(v)) for v in (bottom, (bottom + 100) / 2, 100.0)]
    return Chart(WIDTH, HEIGHT, bars, target, y_of(target), ticks, LEFT, plot_bottom, HEIGHT - 8)


def _label(value: float) -> str:
    text = f"{value:.3f}".rstrip("0").rstrip(".")
    return f"{text} %"
