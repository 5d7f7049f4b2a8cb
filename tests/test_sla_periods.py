"""Calendar periods in the site timezone: months, quarters, years, DST and leap years."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from uptally.sla.periods import following, parse_period, period_at, preceding, split

H = 3_600_000


def ms(*parts: int) -> int:
    return round(datetime(*parts, tzinfo=UTC).timestamp() * 1000)  # type: ignore[misc]


@pytest.mark.parametrize(
    ("label", "zone", "start", "hours"),
    [
        ("2026-01", "UTC", ms(2026, 1, 1), 31 * 24),
        ("2026-03", "Europe/Berlin", ms(2026, 2, 28, 23), 31 * 24 - 1),  # spring forward
        ("2026-10", "Europe/Berlin", ms(2026, 9, 30, 22), 31 * 24 + 1),  # fall back
        ("2026-03", "America/New_York", ms(2026, 3, 1, 5), 31 * 24 - 1),
        ("2028-02", "UTC", ms(2028, 2, 1), 29 * 24),  # leap year
        ("2026-02", "UTC", ms(2026, 2, 1), 28 * 24),
        ("2100-02", "UTC", ms(2100, 2, 1), 28 * 24),  # divisible by 100: not a leap year
        ("2026-Q1", "Europe/Berlin", ms(2025, 12, 31, 23), (31 + 28 + 31) * 24 - 1),
        ("2026-Q4", "UTC", ms(2026, 10, 1), (31 + 30 + 31) * 24),
        ("2026", "Europe/Berlin", ms(2025, 12, 31, 23), 365 * 24),
        ("2028", "UTC", ms(2028, 1, 1), 366 * 24),
        ("2026-04", "Asia/Kolkata", ms(2026, 3, 31, 18, 30), 30 * 24),  # +05:30
    ],
)
def test_periods_are_calendar_periods_in_the_zone(
    label: str, zone: str, start: int, hours: int
) -> None:
    period = parse_period(label, zone)
    assert (period.label, period.start, period.length) == (label, start, hours * H)


def test_consecutive_periods_tile_without_gaps_or_overlaps() -> None:
    for zone in ("UTC", "Europe/Berlin", "America/Santiago", "Australia/Lord_Howe"):
        month = parse_period("2025-01", zone)
        for _ in range(40):
            after = following(month)
            assert after.start == month.end
            assert preceding(after) == month
            month = after


def test_a_year_splits_into_its_quarters_and_months() -> None:
    year = parse_period("2026", "Europe/Berlin")
    quarters = split(year, "quarter")
    months = split(year, "month")
    assert [q.label for q in quarters] == ["2026-Q1", "2026-Q2", "2026-Q3", "2026-Q4"]
    assert len(months) == 12
    assert months[0].start == year.start
    assert months[-1].end == year.end
    assert sum(m.length for m in months) == year.length
    assert split(months[0], "quarter") == [months[0]]


def test_the_period_at_an_instant_is_the_local_one() -> None:
    # 2026-01-31T23:30Z is already February in Berlin
    assert period_at("month", ms(2026, 1, 31, 23, 30), "Europe/Berlin").label == "2026-02"
    assert period_at("month", ms(2026, 1, 31, 23, 30), "UTC").label == "2026-01"
    assert period_at("quarter", ms(2026, 5, 5), "UTC").label == "2026-Q2"


@pytest.mark.parametrize("text", ["2026-13", "2026-00", "2026-Q5", "26-01", "2026/01", "", "x"])
def test_malformed_periods_are_refused(text: str) -> None:
    with pytest.raises(ValueError, match="period"):
        parse_period(text, "UTC")
