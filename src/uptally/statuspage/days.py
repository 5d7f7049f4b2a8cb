"""Daily uptime of a component from outage intervals: the cells of the 90-day bar (pure).

A component is in a major outage while all of its monitors are down (or an outage was recorded
on the component itself), and in a partial outage while some but not all are. Days are
calendar days in the site timezone (DST days are 23 or 25 hours long). Uptime counts major
outage time fully and partial outage time at 30 %, the convention of hosted status pages.
Time when uptally itself was not running is *not monitored*: neither up nor down, so it is left
out of both the downtime and the time uptime is a share of, and each day says how much of it
there was.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from uptally.clock import Millis, to_datetime
from uptally.sla.intervals import Interval, intersect_all, merge, subtract
from uptally.sla.ledger import counted_from

PARTIAL_WEIGHT = 0.3
MINUTE = 60_000


@dataclass(frozen=True, slots=True)
class Day:
    date: date
    start: Millis
    end: Millis


@dataclass(frozen=True, slots=True)
class DayCell:
    """Immutable, so that components whose day was alike share one cell (`shared`): a page of
    10,000 monitors has 90,000 cells but only a few hundred different ones, and every object the
    model keeps is walked by the garbage collector while it holds the event loop."""

    day: Day
    state: str  # operational | partial | major | nodata
    major_ms: int = 0
    partial_ms: int = 0
    notes: tuple[str, ...] = ()  # incidents and maintenance of the day
    not_monitored_ms: int = 0  # uptally was not running
    # Local times ("14:05 UTC") a monitor of the component was reconfigured: shown as such,
    # without what changed or who changed it (the page is public).
    reconfigured: tuple[str, ...] = ()

    @property
    def down_minutes(self) -> float:
        return (self.major_ms + self.partial_ms) / MINUTE


def last_days(count: int, now: Millis, zone: ZoneInfo) -> list[Day]:
    """The `count` calendar days up to and including today, in `zone`, oldest first."""
    today = to_datetime(now, zone).date()
    days = []
    for back in range(count - 1, -1, -1):
        day = today - timedelta(days=back)
        start = datetime.combine(day, time.min, zone)
        end = datetime.combine(day + timedelta(days=1), time.min, zone)
        days.append(Day(day, int(start.timestamp() * 1000), int(end.timestamp() * 1000)))
    return days


def overlap(intervals: Sequence[Interval], start: Millis, end: Millis) -> int:
    return sum(max(0, min(e, end) - max(s, start)) for s, e in intervals)


@dataclass(frozen=True, slots=True)
class ComponentDowntime:
    major: list[Interval]
    partial: list[Interval]
    not_monitored: list[Interval] = field(default_factory=list)


def component_downtime(
    per_monitor: Mapping[str, Iterable[Interval]],
    on_component: Iterable[Interval],
    not_monitored: Iterable[Interval] = (),
) -> ComponentDowntime:
    """Major (all monitors, or recorded on the component) and partial (some) downtime, outside
    the time not monitored (an outage open across a restart is not downtime while uptally was
    not running)."""
    gaps = merge(not_monitored)
    monitors = [merge(intervals) for intervals in per_monitor.values()]
    union = merge(i for m in monitors for i in m)
    major = merge([*intersect_all(monitors), *on_component])
    partial = subtract(union, major)
    return ComponentDowntime(subtract(major, gaps), subtract(partial, gaps), gaps)


def day_cells(
    downtime: ComponentDowntime, days: Sequence[Day], measured_from: Millis | None
) -> list[DayCell]:
    """A day before measured time began (`counted_from`) has no data, not 100 %."""
    cells = []
    majors = per_day(downtime.major, days)
    partials = per_day(downtime.partial, days)
    recorded = _recorded(downtime)
    for day, major, partial in zip(days, majors, partials, strict=True):
        start = counted_from(day.start, day.end, measured_from, recorded)
        if start >= day.end:
            cells.append(DayCell(day, "nodata"))
            continue
        unknown = overlap(downtime.not_monitored, start, day.end)
        if unknown >= day.end - start:
            cells.append(DayCell(day, "nodata", not_monitored_ms=unknown))
            continue
        state = "major" if major else "partial" if partial else "operational"
        cells.append(DayCell(day, state, major, partial, not_monitored_ms=unknown))
    return cells


def shared(cells: list[DayCell], alike: dict[DayCell, DayCell]) -> list[DayCell]:
    """`cells` with each one replaced by an equal cell seen before (kept in `alike`)."""
    return [alike.setdefault(cell, cell) for cell in cells]


def per_day(intervals: Sequence[Interval], days: Sequence[Day]) -> list[int]:
    """Time covered by `intervals` (sorted, disjoint, as `merge` gives) within each of `days`
    (ascending): one sweep instead of every interval against every day."""
    covered = []
    first = 0
    for day in days:
        while first < len(intervals) and intervals[first][1] <= day.start:
            first += 1
        total = 0
        index = first
        while index < len(intervals) and intervals[index][0] < day.end:
            start, end = intervals[index]
            total += max(0, min(end, day.end) - max(start, day.start))
            index += 1
        covered.append(total)
    return covered


def uptime_percent(
    downtime: ComponentDowntime, start: Millis, end: Millis, measured_from: Millis | None
) -> float | None:
    """Uptime over [start, end) counted from when measured time began (`counted_from`), over
    the time monitored; None when nothing of it was measured."""
    start = counted_from(start, end, measured_from, _recorded(downtime))
    total = end - start - overlap(downtime.not_monitored, start, end)
    if total <= 0:
        return None
    lost = overlap(downtime.major, start, end) + PARTIAL_WEIGHT * overlap(
        downtime.partial, start, end
    )
    return max(0.0, min(100.0, 100.0 * (1 - lost / total)))


def _recorded(downtime: ComponentDowntime) -> list[Interval]:
    return merge([*downtime.major, *downtime.partial])
