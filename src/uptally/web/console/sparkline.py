"""A sparkline as the path of an inline SVG: hourly values, gaps where nothing was measured."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

WIDTH = 96
HEIGHT = 24


@dataclass(frozen=True, slots=True)
class Spark:
    path: str  # SVG path data ("" when nothing was measured)
    label: str  # what it shows, in words (the SVG's accessible name)
    low: float | None
    high: float | None


def spark(values: Sequence[float | None], what: str = "Latency, last 24 h") -> Spark:
    known = [v for v in values if v is not None]
    if not known or len(values) < 2:
        return Spark("", f"{what}: no measurements", None, None)
    low, high = min(known), max(known)
    span = (high - low) or 1.0
    step = WIDTH / (len(values) - 1)
    parts: list[str] = []
    lifted = True
    for index, value in enumerate(values):
        if value is None:
            lifted = True
            continue
        x = index * step
        y = HEIGHT - 2 - (value - low) / span * (HEIGHT - 4)
        parts.append(f"{'M' if lifted else 'L'}{x:.1f} {y:.1f}")
        lifted = False
    label = f"{what}: from {low:.0f} to {high:.0f} ms, now {known[-1]:.0f} ms"
    return Spark(" ".join(parts), label, low, high)
