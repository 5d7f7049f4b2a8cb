"""The 90-day bar and uptime from outage intervals (pure)."""

from __future__ import annotations

from datetime import date
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from uptally.sla.intervals import intersect, merge, subtract
from uptally.statuspage.days import (
    ComponentDowntime,
    Day,
    component_downtime,
    day_cells,
    last_days,
    per_day,
    uptime_percent,
)
from uptally.statuspage.svg import cell_title

H = 3_600_000
BERLIN = ZoneInfo("Europe/Berlin")
NOW = 1_774_836_000_000  # 2026-03-30 04:00 Europe/Berlin (after the switch to summer time)


def test_days_are_calendar_days_in_the_site_timezone_even_across_dst() -> None:
    days = last_days(3, NOW, BERLIN)
    assert [d.date for d in days] == [date(2026, 3, 28), date(2026, 3, 29), date(2026, 3, 30)]
    assert [(d.end - d.start) // H for d in days] == [24, 23, 24]  # 29 March had 23 hours
    assert days[0].end == days[1].start


def test_a_component_is_down_in_full_only_while_all_its_monitors_are() -> None:
    downtime = component_downtime({"a": [(0, 10 * H)], "b": [(5 * H, 20 * H)]}, [])
    assert downtime.major == [(5 * H, 10 * H)]
    assert downtime.partial == [(0, 5 * H), (10 * H, 20 * H)]


def test_an_outage_recorded_on_the_component_is_a_major_one() -> None:
    downtime = component_downtime({"a": []}, [(2 * H, 3 * H)])
    assert (downtime.major, downtime.partial) == ([(2 * H, 3 * H)], [])


def test_cells_take_the_worst_state_of_their_day_and_know_days_before_monitoring() -> None:
    days = last_days(4, NOW, BERLIN)
    downtime = component_downtime(
        {
            "a": [(days[2].start + H, days[2].start + 2 * H)],
            "b": [(days[2].start, days[2].start + 90 * 60_000)],
        },
        [],
    )
    cells = day_cells(downtime, days, measured_from=days[1].start + 5)
    assert [c.state for c in cells] == ["nodata", "operational", "major", "operational"]
    assert cells[2].major_ms == 30 * 60_000
    assert cells[2].partial_ms == 90 * 60_000
    assert cells[2].down_minutes == 120


def test_uptime_counts_major_fully_and_partial_at_30_percent_from_when_monitoring_began() -> None:
    downtime = component_downtime({"a": [(0, 10 * H)], "b": [(0, 5 * H)]}, [])
    # 100 h observed: 5 h major, 5 h partial -> 5 + 1.5 = 6.5 h lost
    assert uptime_percent(downtime, -50 * H, 100 * H, measured_from=0) == 93.5
    nothing = ComponentDowntime([], [])
    assert uptime_percent(nothing, 0, 100 * H, measured_from=None) is None
    assert uptime_percent(nothing, 0, 100 * H, measured_from=100 * H) is None
    # An outage recorded before measured time (a backfill) vouches for the window.
    assert uptime_percent(downtime, 0, 100 * H, measured_from=None) == 93.5


def test_time_not_monitored_is_neither_downtime_nor_uptime_and_each_day_says_so() -> None:
    days = last_days(3, NOW, BERLIN)
    # Down for 4 h from 01:00 of the second day; uptally was not running 02:00-03:00 of it,
    # and all of the third day so far.
    down = [(days[1].start + H, days[1].start + 5 * H)]
    gaps = [(days[1].start + 2 * H, days[1].start + 3 * H), (days[2].start, days[2].end)]
    downtime = component_downtime({"a": down}, [], gaps)
    cells = day_cells(downtime, days, measured_from=days[0].start)
    assert [c.state for c in cells] == ["operational", "major", "nodata"]
    assert (cells[1].major_ms, cells[1].not_monitored_ms) == (3 * H, H)
    assert cells[2].not_monitored_ms == days[2].end - days[2].start
    assert cell_title(cells[1]) == "2026-03-29: 3.0 h of downtime, 60 min not monitored"
    assert cell_title(cells[2]) == "2026-03-30: not monitored"
    # 3 h down of the 22 h of the second day that were monitored (a 23-hour DST day).
    second = uptime_percent(downtime, days[1].start, days[1].end, measured_from=days[0].start)
    assert second == 100 * (1 - 3 / 22)
    whole = uptime_percent(downtime, days[0].start, days[2].end, measured_from=days[0].start)
    assert whole == 100 * (1 - 3 / (24 + 22))


intervals = st.lists(
    st.tuples(st.integers(0, 1000), st.integers(1, 200)).map(lambda t: (t[0], t[0] + t[1])),
    max_size=8,
)


@given(intervals, intervals)
def test_interval_algebra_agrees_with_a_minute_by_minute_count(
    a: list[tuple[int, int]], b: list[tuple[int, int]]
) -> None:
    def points(spans: list[tuple[int, int]]) -> set[int]:
        return {p for s, e in spans for p in range(s, e)}

    assert points(merge(a)) == points(a)
    assert points(intersect(merge(a), merge(b))) == points(a) & points(b)
    assert points(subtract(merge(a), merge(b))) == points(a) - points(b)
    assert all(s < e for s, e in merge(a))


@given(intervals, intervals)
def test_uptime_stays_within_0_and_100(a: list[tuple[int, int]], b: list[tuple[int, int]]) -> None:
    value = uptime_percent(component_downtime({"a": a, "b": b}, []), 0, 1300, measured_from=0)
    assert value is not None
    assert 0.0 <= value <= 100.0


@given(intervals, st.lists(st.integers(1, 150), min_size=1, max_size=12))
def test_the_per_day_sweep_agrees_with_counting_each_day(
    a: list[tuple[int, int]], lengths: list[int]
) -> None:
    days, start = [], 0
    for length in lengths:
        days.append(Day(date(2026, 1, 1), start, start + length))
        start += length
    spans = merge(a)
    expected = [
        len({p for s, e in spans for p in range(s, e)} & set(range(d.start, d.end))) for d in days
    ]
    assert per_day(spans, days) == expected
