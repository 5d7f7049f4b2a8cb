"""How the monitor pages write times, durations and latencies (in the site's timezone)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from uptally.clock import iso


def ms(value: float | None) -> str:
    """A latency: '—' when there is none."""
    if value is None:
        return "—"
    if value >= 1000:
        return f"{value / 1000:.2f} s"
    return f"{value:.0f} ms" if value >= 10 else f"{value:.1f} ms"


def duration(start: int, end: int | None) -> str:
    """How long from start to end ('ongoing' without an end)."""
    if end is None:
        return "ongoing"
    seconds = max(0, (end - start) // 1000)
    hours, rest = divmod(seconds, 3600)
    minutes, seconds = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {seconds:02d} s"
    return f"{seconds} s"


def helpers(zone: ZoneInfo) -> dict[str, Callable[..., Any]]:
    """The template functions of the monitor pages."""

    def when(value: int | str | None, pattern: str = "%Y-%m-%d %H:%M:%S") -> str:
        if value is None:
            return ""
        if isinstance(value, str):
            moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
        else:
            moment = datetime.fromtimestamp(value / 1000, zone)
        return moment.astimezone(zone).strftime(pattern)

    return {"when": when, "iso": iso, "ms": ms, "duration": duration}
