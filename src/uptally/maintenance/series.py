"""Recurring maintenance windows: their occurrences are scheduled a week ahead, one by one.

An occurrence is a window of its own (id `<series>@<UTC start>`): it can be changed or cancelled
alone, and the status page and the SLA ledger see it like any other window. Changing the plan
(e.g. a config reload) reschedules the occurrences that have not started; cancelling the series
cancels them.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from uptally import audit
from uptally.clock import Millis, iso
from uptally.maintenance.recurrence import occurrences
from uptally.maintenance.service import Maintenance, WindowError
from uptally.maintenance.windows import WindowStatus, WindowView, is_short_notice
from uptally.store import maintenance as store
from uptally.store.maintenance import SeriesRow

HORIZON_MS = 7 * 86_400_000  # occurrences are scheduled this far ahead
S = WindowStatus


@dataclass(frozen=True, slots=True)
class SeriesPlan:
    id: str
    title: str
    rrule: str | None
    cron: str | None
    first: datetime | None  # naive, site timezone
    duration_ms: int
    until: Millis | None
    components: list[str]
    monitors: list[str]
    message: str = ""


def series_row(
    plan: SeriesPlan, source: str, timezone: str, *, created: tuple[Millis, Millis, str]
) -> SeriesRow:
    """The stored form of a plan; `created` is (created_at, updated_at, created_by)."""
    created_at, updated_at, created_by = created
    return SeriesRow(
        plan.id,
        source,
        plan.title,
        plan.message,
        plan.rrule,
        plan.cron,
        plan.first,
        plan.duration_ms,
        plan.until,
        timezone,
        list(plan.components),
        list(plan.monitors),
        created_at,
        updated_at,
        created_by,
    )


class Recurring:
    def __init__(self, windows: Maintenance) -> None:
        self.windows = windows

    async def create(
        self, conn: AsyncConnection, plan: SeriesPlan, actor: str, *, source: str = "api"
    ) -> SeriesRow:
        self.windows.check_targets(plan.components, plan.monitors)
        if await store.get_series(conn, plan.id) is not None:
            raise WindowError(f"a recurring window {plan.id!r} exists already", 409)
        now = self.windows.clock.now_ms()
        series = series_row(
            plan, source, self.windows.config.site.timezone, created=(now, now, actor)
        )
        if not occurrences(series.recurrence(), now, now + 400 * 86_400_000, limit=1):
            raise WindowError("the recurrence has no occurrence in the coming year")
        await store.insert_series(conn, series)
        await audit.append(
            conn,
            actor,
            "maintenance.series_created",
            f"maintenance-series:{plan.id}",
            _series_details(series),
            at=now,
        )
        await self.materialise(conn, series, actor)
        return series

    async def replace(self, conn: AsyncConnection, series: SeriesRow, actor: str) -> SeriesRow:
        """A recurring window planned differently (e.g. a config reload): reschedule it."""
        now = self.windows.clock.now_ms()
        series = replace(series, updated_at=now, cancelled_at=None)
        await store.update_series(conn, series)
        await audit.append(
            conn,
            actor,
            "maintenance.series_changed",
            f"maintenance-series:{series.id}",
            _series_details(series),
            at=now,
        )
        await self.materialise(conn, series, actor)
        return series

    async def cancel(self, conn: AsyncConnection, series_id: str, actor: str) -> int:
        """Stop a recurring window: its scheduled occurrences are cancelled (a running one
        continues until it ends or is ended)."""
        series = await store.get_series(conn, series_id)
        if series is None:
            raise WindowError(f"no recurring window {series_id!r}", 404)
        if series.cancelled_at is not None:
            raise WindowError("the recurring window is cancelled already", 409)
        now = self.windows.clock.now_ms()
        await store.update_series(conn, replace(series, cancelled_at=now, updated_at=now))
        await audit.append(
            conn,
            actor,
            "maintenance.series_cancelled",
            f"maintenance-series:{series_id}",
            {},
            at=now,
        )
        upcoming = await store.list_windows(
            conn, series=series_id, states={S.SCHEDULED.value}, limit=10_000, with_updates=False
        )
        for window in upcoming:
            await self.windows.cancel(conn, window.id, actor)
        return len(upcoming)

    async def materialise(
        self, conn: AsyncConnection, series: SeriesRow, actor: str = audit.SYSTEM
    ) -> list[WindowView]:
        """Schedule the occurrences of the coming days; reconcile those not started yet."""
        if series.cancelled_at is not None:
            return []
        now = self.windows.clock.now_ms()
        since = max(series.updated_at, now - series.duration_ms)
        wanted = {
            occurrence_id(series.id, start): (start, end)
            for start, end in occurrences(series.recurrence(), since, now + HORIZON_MS)
        }
        existing = {
            w.id: w
            for w in await store.list_windows(
                conn, series=series.id, since=since, limit=10_000, with_updates=False
            )
        }
        created: list[WindowView] = []
        for window in existing.values():
            if window.status != S.SCHEDULED or window.scheduled_for <= now:
                continue
            if window.id not in wanted:
                await self.windows.cancel(conn, window.id, actor)
                continue
            start, end = wanted[window.id]
            fields = {
                "title": series.title,
                "message_markdown": series.message,
                "scheduled_until": end,
                "components": series.components,
                "monitors": series.monitors,
            }
            if any(getattr(window, k) != v for k, v in fields.items()):
                await self.windows.change(
                    conn, window.id, actor, **_change_args(fields), refuse_short=False
                )
        refuse = series.source == "api" and self.windows.config.site.short_notice == "refuse"
        for window_id, (start, end) in sorted(wanted.items(), key=lambda item: item[1]):
            if window_id in existing:
                continue
            short = is_short_notice(
                series.updated_at, start, self.windows.config.site.maintenance_notice
            )
            if short and refuse:
                continue  # too soon after it was announced: this occurrence does not happen
            window = WindowView.scheduled(
                window_id,
                series.title,
                start,
                end,
                components=list(series.components),
                monitors=list(series.monitors),
                message=series.message,
                short_notice=short,
                now=now,
                source=series.source,
                series=series.id,
            )
            await self.windows.insert(conn, window, actor, "maintenance.created")
            created.append(window)
        return created


def occurrence_id(series: str, start: Millis) -> str:
    """`<series>@<UTC start>`, e.g. db-vacuum@20261004T0000Z (stable: one id per occurrence)."""
    stamp = iso(start) or ""
    return f"{series}@{stamp[:16].replace('-', '').replace(':', '')}Z"


def _series_details(series: SeriesRow) -> dict[str, Any]:
    return {
        "title": series.title,
        "rrule": series.rrule,
        "cron": series.cron,
        "first": series.first.isoformat() if series.first else None,
        "duration_ms": series.duration_ms,
        "until": iso(series.until),
        "timezone": series.timezone,
        "components": series.components,
        "monitors": series.monitors,
    }


def _change_args(fields: dict[str, Any]) -> dict[str, Any]:
    return {
        "title": fields["title"],
        "message": fields["message_markdown"],
        "end": fields["scheduled_until"],
        "components": fields["components"],
        "monitors": fields["monitors"],
    }
