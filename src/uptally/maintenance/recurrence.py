"""Occurrences of recurring windows: RFC 5545 RRULE or cron, in wall-clock time of a zone (pure).

Rules are expanded in local wall-clock time and each start is then placed in the zone, so a
weekly 02:00 window stays at 02:00 across DST changes. A start that does not exist locally (the
spring-forward gap) moves forward by the gap; an ambiguous one (fall-back) is the first of the
two. Each occurrence lasts `duration` of real time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter
from dateutil.rrule import rrulestr

from uptally.clock import Millis, to_datetime

DAY = timedelta(days=1)
_UTC_UNTIL = re.compile(r"UNTIL=(\d{8})(?:T(\d{6}))?Z", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class Recurrence:
    rrule: str | None  # RRULE without DTSTART
    cron: str | None
    first: datetime | None  # naive local time: DTSTART of an rrule; for cron the earliest start
    duration_ms: int
    until: Millis | None  # no occurrence starts at or after this
    timezone: str


def local_ms(moment: datetime, timezone: str) -> Millis:
    """Milliseconds of a time; a naive one is wall-clock time in `timezone` (first if ambiguous)."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=ZoneInfo(timezone))
    return round(moment.timestamp() * 1000)


def wall_clock(at: Millis, timezone: str) -> datetime:
    """The naive local wall-clock time of an instant."""
    return to_datetime(at).astimezone(ZoneInfo(timezone)).replace(tzinfo=None)


def occurrences(
    rec: Recurrence, since: Millis, before: Millis, limit: int = 1000
) -> list[tuple[Millis, Millis]]:
    """(start, end) of the occurrences that start in [since, before), in order."""
    if before <= since:
        return []
    # Local bounds with a day of slack either side: offsets are under a day.
    low = wall_clock(since, rec.timezone) - DAY
    high = wall_clock(before, rec.timezone) + DAY
    if rec.first is not None:
        low = max(low, rec.first)
    starts: set[Millis] = set()
    for local in _local_starts(rec, low, high, limit * 4):
        at = local_ms(local, rec.timezone)
        if since <= at < before and (rec.until is None or at < rec.until):
            starts.add(at)
    return [(at, at + rec.duration_ms) for at in sorted(starts)[:limit]]


def _local_starts(rec: Recurrence, low: datetime, high: datetime, cap: int) -> list[datetime]:
    if rec.rrule is not None:
        assert rec.first is not None
        rule = rrulestr(_local_until(rec.rrule, rec.timezone), dtstart=rec.first)
        found: list[datetime] = []
        for local in rule.xafter(low, count=cap, inc=True):
            if local > high:
                break
            found.append(local)
        return found
    assert rec.cron is not None
    times = croniter(rec.cron, low - timedelta(seconds=1))
    found = []
    while len(found) < cap:
        upcoming: datetime = times.get_next(datetime)
        if upcoming > high:
            break
        found.append(upcoming)
    return found


def _local_until(rule: str, timezone: str) -> str:
    """An UNTIL given in UTC (…Z) as local wall-clock time, as dateutil wants with a naive start."""

    def local(match: re.Match[str]) -> str:
        moment = datetime.strptime(match[1] + (match[2] or "000000"), "%Y%m%d%H%M%S")
        at = local_ms(moment.replace(tzinfo=ZoneInfo("UTC")), timezone)
        return "UNTIL=" + wall_clock(at, timezone).strftime("%Y%m%dT%H%M%S")

    return _UTC_UNTIL.sub(local, rule)
