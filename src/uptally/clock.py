"""Wall-clock time as integer milliseconds since the Unix epoch (UTC), injectable for tests."""

from __future__ import annotations

import logging
import math
import time
from datetime import UTC, datetime, tzinfo
from typing import Protocol

log = logging.getLogger(__name__)

Millis = int

# What a datetime can show in any timezone (a day inside years 1 and 9999 either side). Stored
# times outside it are nonsense (the database admits any 64-bit number): shown clamped, not fatal.
EARLIEST_MS: Millis = -62_135_510_400_000  # 0001-01-02T00:00Z
LATEST_MS: Millis = 253_402_128_000_000  # 9999-12-30T00:00Z
_WARN_EVERY_S = 60.0
_warned_at = -math.inf


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


def clamp_ms(ms: Millis) -> Millis:
    """`ms` within the range a datetime can show; a value outside it is logged (at most once a
    minute) and clamped, so one absurd stored time cannot break a page or an API answer."""
    if EARLIEST_MS <= ms <= LATEST_MS:
        return ms
    global _warned_at
    if time.monotonic() - _warned_at >= _WARN_EVERY_S:
        _warned_at = time.monotonic()
        log.warning("a stored time (%s ms since the epoch) is out of range; shown clamped", ms)
    return EARLIEST_MS if ms < EARLIEST_MS else LATEST_MS


def to_datetime(ms: Millis, zone: tzinfo = UTC) -> datetime:
    """The moment `ms` in `zone` (clamped to years 1 to 9999, see clamp_ms)."""
    return datetime.fromtimestamp(clamp_ms(ms) / 1000, tz=zone)


def from_datetime(value: datetime) -> Millis:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return round(value.timestamp() * 1000)


def iso(ms: Millis | None) -> str | None:
    """ISO 8601 in UTC with a Z suffix and millisecond precision, or None."""
    if ms is None:
        return None
    return to_datetime(ms).isoformat(timespec="milliseconds").replace("+00:00", "Z")
