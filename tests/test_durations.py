"""Durations ("200ms", "1h30m") and byte sizes ("1MiB") as written in the config."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from uptally.durations import (
    MAX_DURATION_MS,
    format_duration_ms,
    parse_duration_ms,
    parse_size,
)

SECOND = 1_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE
DAY = 24 * HOUR


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("250ms", 250),
        ("0ms", 0),
        ("10s", 10 * SECOND),
        ("1.5s", 1_500),
        ("5m", 5 * MINUTE),
        ("24h", 24 * HOUR),
        ("14d", 14 * DAY),
        ("0.5h", 30 * MINUTE),
    ],
)
def test_it_reads_each_unit(text: str, ms: int) -> None:
    assert parse_duration_ms(text) == ms


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("1h30m", HOUR + 30 * MINUTE),
        ("1h 30m", HOUR + 30 * MINUTE),
        ("1d12h", DAY + 12 * HOUR),
        ("2m30s500ms", 2 * MINUTE + 30 * SECOND + 500),
    ],
)
def test_it_adds_up_combinations_of_units(text: str, ms: int) -> None:
    assert parse_duration_ms(text) == ms


def test_it_ignores_surrounding_and_inner_spaces() -> None:
    assert parse_duration_ms("  5 s ") == 5 * SECOND


def test_it_takes_a_plain_number_as_seconds() -> None:
    assert parse_duration_ms(90) == 90 * SECOND
    assert parse_duration_ms(0.25) == 250


def test_it_rounds_fractions_of_a_millisecond() -> None:
    assert parse_duration_ms("0.4ms") == 0
    assert parse_duration_ms("2.6ms") == 3


@pytest.mark.parametrize(
    "value",
    ["", "s", "5", "90", "5 parsecs", "5S", "1e3s", ".5s", "5.s", "-5s", "1h30", "h1", "5sec"],
)
def test_it_refuses_text_that_is_not_a_duration(value: str) -> None:
    with pytest.raises(ValueError, match=r"invalid duration .*use a number with ms, s, m, h or d"):
        parse_duration_ms(value)


@pytest.mark.parametrize("value", [True, False, None, [1], {"s": 1}])
def test_it_refuses_values_of_other_types(value: object) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration_ms(value)


def test_it_refuses_a_negative_number() -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        parse_duration_ms(-1)


@pytest.mark.parametrize("value", [float("inf"), float("-inf"), float("nan")])
def test_it_refuses_infinite_and_nan_numbers_with_a_value_error(value: float) -> None:
    with pytest.raises(ValueError, match="invalid duration"):
        parse_duration_ms(value)


def test_it_refuses_durations_longer_than_a_hundred_years() -> None:
    assert parse_duration_ms("36500d") == MAX_DURATION_MS
    with pytest.raises(ValueError, match="longer than 100 years"):
        parse_duration_ms("36501d")
    with pytest.raises(ValueError, match="longer than 100 years"):
        parse_duration_ms(10**20)


@pytest.mark.parametrize(
    ("ms", "text"),
    [
        (0, "0ms"),
        (950, "950ms"),
        (999.4, "999ms"),
        (999.6, "1s"),
        (1_000, "1s"),
        (1_500, "1.5s"),
        (12_345, "12.3s"),
        (59_999, "1m"),
        (60_000, "1m"),
        (5 * MINUTE + 3 * SECOND, "5m 3s"),
        (HOUR, "1h"),
        (2 * HOUR + 5 * MINUTE, "2h 5m"),
        (DAY, "1d"),
        (3 * DAY + 4 * HOUR, "3d 4h"),
        (-250, "-250ms"),
    ],
)
def test_it_formats_durations_compactly(ms: float, text: str) -> None:
    assert format_duration_ms(ms) == text


def test_it_formats_non_finite_values_without_crashing() -> None:
    assert format_duration_ms(float("inf")) == "infms"
    assert format_duration_ms(float("nan")) == "nanms"


@given(st.integers(min_value=0, max_value=10 * 365 * DAY))
def test_a_formatted_duration_reads_back_as_nearly_the_same_duration(ms: int) -> None:
    back = parse_duration_ms(format_duration_ms(ms))
    assert abs(back - ms) <= max(ms * 0.05, 1)


@given(
    st.integers(min_value=0, max_value=999),
    st.sampled_from(["ms", "s", "m", "h", "d"]),
)
def test_a_whole_number_of_one_unit_reads_exactly(number: int, unit: str) -> None:
    factor = {"ms": 1, "s": SECOND, "m": MINUTE, "h": HOUR, "d": DAY}[unit]
    assert parse_duration_ms(f"{number}{unit}") == number * factor


@given(st.text(max_size=20))
def test_parsing_any_text_returns_milliseconds_or_raises_value_error(text: str) -> None:
    try:
        ms = parse_duration_ms(text)
    except ValueError:
        return
    assert isinstance(ms, int)
    assert 0 <= ms <= MAX_DURATION_MS


@pytest.mark.parametrize(
    ("text", "size"),
    [
        ("512", 512),
        ("512b", 512),
        ("1KB", 1_000),
        ("1kb", 1_000),
        ("1 MB", 1_000_000),
        ("2GB", 2_000_000_000),
        ("1KiB", 1_024),
        ("1MiB", 1_048_576),
        ("1mib", 1_048_576),
        ("1GiB", 1_073_741_824),
        (" 7 ", 7),
    ],
)
def test_it_reads_sizes_in_bytes_and_their_units(text: str, size: int) -> None:
    assert parse_size(text) == size


def test_it_takes_a_plain_integer_as_bytes() -> None:
    assert parse_size(4096) == 4096


@pytest.mark.parametrize("value", ["", "1m", "1.5MiB", "1TB", "MiB", "-1", 1.5, None, True])
def test_it_refuses_what_is_not_a_size(value: object) -> None:
    with pytest.raises(ValueError, match=r"invalid size .*use bytes or KiB, MiB, KB, MB"):
        parse_size(value)


def test_it_refuses_a_negative_size() -> None:
    with pytest.raises(ValueError, match="must not be negative"):
        parse_size(-1)
