"""Wall-clock time as integer milliseconds since the Unix epoch (UTC), injectable for tests."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Protocol

Millis = int


class Clock(Protocol):
    def now_ms(self) -> Millis: ...


class SystemClock:
    def now_ms(self) -> Millis:
        return time.time_ns() // 1_000_000


class FakeClock:
    """A clock that only moves when told to."""

    def __init__(self, start_ms: Millis = 1_767_225_600_000) -> None:  # 2026-01-01T00:00Z
        self.now = start_ms

    def now_ms(self) -> Millis:
        return self.now

    def advance(self, ms: int) -> None:
        self.now += ms


def to_datetime(ms: Millis) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


def from_datetime(value: datetime) -> Millis:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return round(value.timestamp() * 1000)


def iso(ms: Millis | None) -> str | None:
    """ISO 8601 in UTC with a Z suffix and millisecond precision, or None."""
    if ms is None:
        return None
    return to_datetime(ms).isoformat(timespec="milliseconds").replace("+00:00", "Z")
