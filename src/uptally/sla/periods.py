"""Calendar periods (month, quarter, year) in the site timezone as UTC millisecond bounds (pure)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Literal
from zoneinfo import ZoneInfo

from uptally.clock import Millis, to_datetime

PeriodKind = Literal["month", "quarter", "year"]
_MONTHS: dict[str, int] = {"month": 1, "quarter": 3, "year": 12}
_LABEL = re.compile(r"^(\d{4})(?:-(?:(\d{2})|Q([1-4])))?$")


@dataclass(frozen=True, slots=True)
class Period:
    """A calendar period: [start, end) in UTC milliseconds, from local midnights."""

    kind: PeriodKind
    year: int
    first_month: int  # 1-12
    timezone: str
    start: Millis
    end: Millis

    @property
    def label(self) -> str:
        if self.kind == "year":
            return f"{self.year}"
        if self.kind == "quarter":
            return f"{self.year}-Q{(self.first_month - 1) // 3 + 1}"
        return f"{self.year}-{self.first_month:02d}"

    @property
    def length(self) -> int:
        return self.end - self.start

    def contains(self, at: Millis) -> bool:
        return self.start <= at < self.end


def local_midnight(year: int, month: int, timezone: str) -> Millis:
    """The first instant of the 1st of a month in the zone (months may roll into next years).

    A local midnight that does not exist (a DST jump at 00:00) is read with the offset before
    the jump, the same way for the end of one period and the start of the next, so periods tile.
    """
    year += (month - 1) // 12
    month = (month - 1) % 12 + 1
    moment = datetime(year, month, 1, tzinfo=ZoneInfo(timezone))
    return round(moment.timestamp() * 1000)


def period(kind: PeriodKind, year: int, first_month: int, timezone: str) -> Period:
    span = _MONTHS[kind]
    if kind == "quarter":
        first_month = (first_month - 1) // 3 * 3 + 1
    elif kind == "year":
        first_month = 1
    start = local_midnight(year, first_month, timezone)
    end = local_midnight(year, first_month + span, timezone)
    return Period(kind, year, first_month, timezone, start, end)


def parse_period(text: str, timezone: str) -> Period:
    """YYYY-MM (a month), YYYY-Qn (a quarter) or YYYY (a year); ValueError otherwise."""
    match = _LABEL.match(text.strip())
    if not match:
        raise ValueError(f"period must be YYYY-MM, YYYY-Qn or YYYY, not {text!r}")
    year = int(match[1])
    if not 1970 <= year <= 9998:
        raise ValueError(f"year out of range in period {text!r}")
    if match[2] is not None:
        month = int(match[2])
        if not 1 <= month <= 12:
            raise ValueError(f"month out of range in period {text!r}")
        return period("month", year, month, timezone)
    if match[3] is not None:
        return period("quarter", year, (int(match[3]) - 1) * 3 + 1, timezone)
    return period("year", year, 1, timezone)


def period_at(kind: PeriodKind, at: Millis, timezone: str) -> Period:
    """The period of this kind that contains the instant `at`."""
    local = to_datetime(at).astimezone(ZoneInfo(timezone))
    return period(kind, local.year, local.month, timezone)


def following(current: Period) -> Period:
    nxt = current.first_month + _MONTHS[current.kind]
    return period(
        current.kind, current.year + (nxt - 1) // 12, (nxt - 1) % 12 + 1, current.timezone
    )


def preceding(current: Period) -> Period:
    prev = current.first_month - _MONTHS[current.kind]
    return period(
        current.kind, current.year + (prev - 1) // 12, (prev - 1) % 12 + 1, current.timezone
    )


def split(whole: Period, kind: PeriodKind) -> list[Period]:
    """The periods of `kind` that make up `whole` (itself if `kind` is not shorter)."""
    if _MONTHS[kind] >= _MONTHS[whole.kind]:
        return [whole]
    step = _MONTHS[kind]
    return [
        period(kind, whole.year, whole.first_month + offset, whole.timezone)
        for offset in range(0, _MONTHS[whole.kind], step)
    ]
