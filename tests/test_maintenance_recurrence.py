"""Recurring windows: RRULE and cron in wall-clock time of the site timezone, DST-correct."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from uptally.clock import iso
from uptally.maintenance.recurrence import Recurrence, local_ms, occurrences

H = 3_600_000


def utc(*parts: int) -> int:
    return round(datetime(*parts, tzinfo=UTC).timestamp() * 1000)  # type: ignore[misc]


def starts(rec: Recurrence, since: int, before: int) -> list[str]:
    return [iso(start) or "" for start, _ in occurrences(rec, since, before)]


def test_a_weekly_rule_keeps_local_time_across_both_dst_changes() -> None:
    rule = Recurrence(
        "FREQ=WEEKLY;BYDAY=SU", None, datetime(2026, 3, 22, 2, 30), H, None, "Europe/Berlin"
    )
    assert starts(rule, utc(2026, 3, 1), utc(2026, 4, 6)) == [
        "2026-03-22T01:30:00.000Z",  # 02:30 CET
        "2026-03-29T01:30:00.000Z",  # 02:30 does not exist that night: moved on to 03:30 CEST
        "2026-04-05T00:30:00.000Z",  # 02:30 CEST
    ]
    autumn = Recurrence(
        "FREQ=WEEKLY;BYDAY=SU", None, datetime(2026, 10, 18, 2, 30), H, None, "Europe/Berlin"
    )
    assert starts(autumn, utc(2026, 10, 1), utc(2026, 11, 2)) == [
        "2026-10-18T00:30:00.000Z",  # 02:30 CEST
        "2026-10-25T00:30:00.000Z",  # 02:30 happens twice that night: the first one
        "2026-11-01T01:30:00.000Z",  # 02:30 CET
    ]


def test_cron_windows_follow_the_site_timezone() -> None:
    rec = Recurrence(None, "0 3 * * *", None, 30 * 60_000, None, "America/New_York")
    assert starts(rec, utc(2026, 3, 7), utc(2026, 3, 10)) == [
        "2026-03-07T08:00:00.000Z",  # 03:00 EST
        "2026-03-08T07:00:00.000Z",  # 03:00 EDT (the change is at 02:00)
        "2026-03-09T07:00:00.000Z",
    ]


def test_an_occurrence_lasts_its_duration_of_real_time() -> None:
    # 01:30 + 2 h on the night of the spring change ends at 04:30 local, 2 h later
    rec = Recurrence("FREQ=DAILY", None, datetime(2026, 3, 28, 1, 30), 2 * H, None, "Europe/Berlin")
    [(start, end)] = occurrences(rec, utc(2026, 3, 29), utc(2026, 3, 29, 12))
    assert end - start == 2 * H
    assert iso(end) == "2026-03-29T02:30:00.000Z"  # 04:30 CEST


def test_until_count_and_the_first_occurrence_bound_the_series() -> None:
    rec = Recurrence("FREQ=DAILY;COUNT=3", None, datetime(2026, 1, 1, 4), H, None, "UTC")
    assert starts(rec, utc(2025, 1, 1), utc(2027, 1, 1)) == [
        "2026-01-01T04:00:00.000Z",
        "2026-01-02T04:00:00.000Z",
        "2026-01-03T04:00:00.000Z",
    ]
    utc_until = Recurrence(
        "FREQ=DAILY;UNTIL=20260102T200000Z", None, datetime(2026, 1, 1, 4), H, None, "Asia/Tokyo"
    )
    # 20:00Z is 05:00 in Tokyo: the third 04:00 occurrence is before it (read as local, it is not)
    assert len(occurrences(utc_until, utc(2025, 1, 1), utc(2027, 1, 1))) == 3
    capped = Recurrence(None, "0 * * * *", None, H, utc(2026, 1, 1, 3), "UTC")
    assert starts(capped, utc(2026, 1, 1), utc(2026, 1, 2)) == [
        f"2026-01-01T0{h}:00:00.000Z" for h in range(3)
    ]


def test_a_window_covers_only_occurrences_starting_in_the_range() -> None:
    rec = Recurrence("FREQ=HOURLY", None, datetime(2026, 1, 1), 30 * 60_000, None, "UTC")
    assert len(occurrences(rec, utc(2026, 1, 1, 0, 30), utc(2026, 1, 1, 3))) == 2
    assert occurrences(rec, utc(2026, 1, 1, 3), utc(2026, 1, 1, 3)) == []


@pytest.mark.parametrize(
    ("moment", "zone", "expected"),
    [
        (datetime(2026, 7, 1, 12), "Europe/Berlin", utc(2026, 7, 1, 10)),
        (datetime(2026, 7, 1, 12, tzinfo=UTC), "Europe/Berlin", utc(2026, 7, 1, 12)),
        (datetime(2026, 1, 1), "Asia/Kolkata", utc(2025, 12, 31, 18, 30)),
    ],
)
def test_naive_times_are_wall_clock_in_the_zone(moment: datetime, zone: str, expected: int) -> None:
    assert local_ms(moment, zone) == expected
