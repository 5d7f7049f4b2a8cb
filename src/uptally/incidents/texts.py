"""Human wording shared by automatic updates and notifications: times, durations, lists."""

from __future__ import annotations

from collections.abc import Sequence
from zoneinfo import ZoneInfo

from uptally.clock import Millis, to_datetime


def format_time(at: Millis, timezone: str) -> str:
    """12:03 UTC on 2026-10-03, in the site's timezone."""
    local = to_datetime(at).astimezone(ZoneInfo(timezone))
    return f"{local:%H:%M} {local.tzname()} on {local:%Y-%m-%d}"


def format_duration(ms: Millis) -> str:
    """4 min 12 s, 2 h 5 min, 3 d 4 h: two units at most, never a bare zero."""
    seconds = max(0, round(ms / 1000))
    days, rest = divmod(seconds, 86_400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [(days, "d"), (hours, "h"), (minutes, "min"), (secs, "s")]
    first = next((i for i, (value, _) in enumerate(parts) if value), len(parts) - 1)
    shown = [f"{value} {unit}" for value, unit in parts[first : first + 2] if value]
    return " ".join(shown) or "0 s"


def join_names(names: Sequence[str]) -> str:
    """a; a and b; a, b and c."""
    if len(names) <= 1:
        return "".join(names)
    return f"{', '.join(names[:-1])} and {names[-1]}"
