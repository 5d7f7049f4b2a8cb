"""Parsing and formatting of durations ("200ms", "1h") and byte sizes ("1MiB")."""

from __future__ import annotations

import math
import re

_DURATION_UNITS_MS = {"ms": 1, "s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}
_DURATION_RE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)\s*$")
_PART_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
MAX_DURATION_MS = 36_500 * 86_400_000  # 100 years: anything longer is a typo

_SIZE_UNITS = {
    "": 1,
    "b": 1,
    "kb": 1_000,
    "mb": 1_000_000,
    "gb": 1_000_000_000,
    "kib": 1 << 10,
    "mib": 1 << 20,
    "gib": 1 << 30,
}
_SIZE_RE = re.compile(r"^\s*(\d+)\s*([kmg]i?b|b)?\s*$", re.IGNORECASE)


def parse_duration_ms(value: object) -> int:
    """Return milliseconds for "90s", "1h30m", "250ms" or a plain number of seconds."""
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r}: use a number with ms, s, m, h or d")
    if isinstance(value, int | float):
        if not math.isfinite(value):
            raise ValueError(f"invalid duration {value!r}: use a number with ms, s, m, h or d")
        if value < 0:
            raise ValueError(f"invalid duration {value!r}: must not be negative")
        return _bounded(round(value * 1000), value)
    if not isinstance(value, str):
        raise ValueError(f"invalid duration {value!r}: use a number with ms, s, m, h or d")
    text = value.strip().replace(" ", "")
    match = _DURATION_RE.match(text)
    if match:
        return _bounded(round(float(match[1]) * _DURATION_UNITS_MS[match[2]]), value)
    parts = _PART_RE.findall(text)
    if parts and "".join(n + u for n, u in parts) == text:
        total = sum(round(float(n) * _DURATION_UNITS_MS[u]) for n, u in parts)
        return _bounded(total, value)
    raise ValueError(f"invalid duration {value!r}: use a number with ms, s, m, h or d")


def _bounded(ms: int, value: object) -> int:
    if ms > MAX_DURATION_MS:
        raise ValueError(f"invalid duration {value!r}: longer than 100 years")
    return ms


def format_duration_ms(ms: float) -> str:
    """Render milliseconds compactly for humans: 950ms, 12s, 5m 3s, 2h 5m, 3d 4h."""
    if not math.isfinite(ms):
        return f"{ms}ms"
    if ms < 0:
        return "-" + format_duration_ms(-ms)
    if round(ms) < 1_000:
        return f"{round(ms)}ms"
    seconds = int(ms // 1000)
    if seconds < 60:
        text = f"{ms / 1000:.3g}"
        if float(text) < 60:
            return f"{text}s"
        seconds = 60
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m {seconds}s" if seconds else f"{minutes}m"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours}h {minutes}m" if minutes else f"{hours}h"
    days, hours = divmod(hours, 24)
    return f"{days}d {hours}h" if hours else f"{days}d"


def parse_size(value: object) -> int:
    """Return bytes for "1MiB", "512KB" or a plain integer."""
    if isinstance(value, bool):
        raise ValueError(f"invalid size {value!r}: use bytes or KiB, MiB, KB, MB")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"invalid size {value!r}: must not be negative")
        return value
    if isinstance(value, str):
        match = _SIZE_RE.match(value)
        if match:
            return int(match[1]) * _SIZE_UNITS[(match[2] or "").lower()]
    raise ValueError(f"invalid size {value!r}: use bytes or KiB, MiB, KB, MB")
