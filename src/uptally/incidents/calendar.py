"""Business days in the site's timezone, without weekends and the site country's public holidays."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from functools import cached_property
from zoneinfo import ZoneInfo

import holidays

from uptally.clock import Millis, from_datetime, to_datetime


class BusinessCalendar:
    def __init__(
        self, timezone: str = "UTC", country: str | None = None, subdivision: str | None = None
    ) -> None:
        self.zone = ZoneInfo(timezone)
        self.country = country
        self.subdivision = subdivision

    @cached_property
    def _holidays(self) -> holidays.HolidayBase | None:
        if self.country is None:
            return None
        # Years are filled in on demand as dates are looked up.
        return holidays.country_holidays(self.country, subdiv=self.subdivision)

    def is_business_day(self, day: date) -> bool:
        if day.weekday() >= 5:
            return False
        return self._holidays is None or day not in self._holidays

    def due_after(self, at: Millis, days: int) -> Millis:
        """The end of the `days`-th business day after the (local) day of `at`.

        Resolved on a Friday afternoon with 5 days: due at the end of the next Friday (the
        local midnight that ends it), one day later for each holiday in between.
        """
        day = to_datetime(at).astimezone(self.zone).date()
        counted = 0
        while counted < days:
            day += timedelta(days=1)
            if self.is_business_day(day):
                counted += 1
        end = datetime.combine(day + timedelta(days=1), time(0), tzinfo=self.zone)
        return from_datetime(end)
