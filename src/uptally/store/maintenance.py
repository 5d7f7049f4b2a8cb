"""Stored maintenance windows, recurring series and their updates; `list_windows` is the read model.

The status page, the Statuspage v2 JSON and feeds read `list_windows` (occurrences of recurring
windows are windows of their own) and decide what is in effect with `active_windows` and
`covering` (re-exported from uptally.maintenance.windows). Repositories never commit.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, or_, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection

from uptally.clock import Millis
from uptally.ids import new_id
from uptally.maintenance.recurrence import Recurrence
from uptally.maintenance.windows import (
    WindowStatus,
    WindowUpdate,
    WindowView,
    active_windows,
    covering,
)
from uptally.store.tables_maintenance import (
    maintenance_series,
    maintenance_updates,
    maintenance_windows,
)

__all__ = [
    "SeriesRow",
    "WindowStatus",
    "WindowUpdate",
    "WindowView",
    "active_windows",
    "covering",
    "list_windows",
]

_T = maintenance_windows.c
SERIES_LOCK = 727_276  # PostgreSQL advisory lock keys: one instance expands series at a time
SLA_LOCK = 727_277  # … and evaluates SLA alerts


async def try_lock(conn: AsyncConnection, key: int) -> bool:
    """Hold a PostgreSQL advisory lock for this transaction if free (SQLite: its write lock
    serialises writers already)."""
    if conn.dialect.name != "postgresql":
        return True
    result = await conn.execute(text("SELECT pg_try_advisory_xact_lock(:key)"), {"key": key})
    return bool(result.scalar())


def _ids(value: Sequence[str]) -> str:
    return json.dumps(list(value), separators=(",", ":"))


def _view(row: Any, updates: list[WindowUpdate]) -> WindowView:
    return WindowView(
        id=row.id,
        title=row.title,
        status=row.status,
        impact="maintenance",
        scheduled_for=row.scheduled_for,
        scheduled_until=row.scheduled_until,
        started_at=row.started_at,
        completed_at=row.completed_at,
        created_at=row.created_at,
        updated_at=row.updated_at,
        components=json.loads(row.components),
        monitors=json.loads(row.monitors),
        message_markdown=row.message,
        short_notice=bool(row.short_notice),
        updates=updates,
        series=row.series,
        source=row.source,
    )


async def insert_window(conn: AsyncConnection, window: WindowView, created_by: str) -> None:
    await conn.execute(
        maintenance_windows.insert().values(
            id=window.id,
            series=window.series,
            source=window.source,
            title=window.title,
            message=window.message_markdown,
            status=window.status,
            scheduled_for=window.scheduled_for,
            scheduled_until=window.scheduled_until,
            started_at=window.started_at,
            completed_at=window.completed_at,
            components=_ids(window.components),
            monitors=_ids(window.monitors),
            short_notice=window.short_notice,
            created_at=window.created_at,
            updated_at=window.updated_at,
            created_by=created_by,
        )
    )


async def update_window(
    conn: AsyncConnection,
    window_id: str,
    expect: Collection[str] | None = None,
    **values: Any,
) -> bool:
    """Change a window if its status is one of `expect`; False if it was not (a race lost).

    The condition makes transitions safe with several instances on one database.
    """
    for key in ("components", "monitors"):
        if key in values:
            values[key] = _ids(values[key])
    if "message_markdown" in values:
        values["message"] = values.pop("message_markdown")
    query = update(maintenance_windows).where(_T.id == window_id)
    if expect is not None:
        query = query.where(_T.status.in_(list(expect)))
    result = await conn.execute(query.values(**values))
    return bool(result.rowcount)


async def add_update(
    conn: AsyncConnection, window_id: str, status: str, body: str, at: Millis, actor: str
) -> WindowUpdate:
    update_id = new_id(at)
    await conn.execute(
        maintenance_updates.insert().values(
            id=update_id,
            window_id=window_id,
            status=status,
            body=body,
            created_at=at,
            created_by=actor,
        )
    )
    return WindowUpdate(update_id, status, body, at)


async def _updates(conn: AsyncConnection, ids: list[str]) -> dict[str, list[WindowUpdate]]:
    found: dict[str, list[WindowUpdate]] = {}
    u = maintenance_updates.c
    for start in range(0, len(ids), 500):
        query = select(u.id, u.window_id, u.status, u.body, u.created_at).where(
            u.window_id.in_(ids[start : start + 500])
        )
        for row in await conn.execute(query):
            found.setdefault(row.window_id, []).append(
                WindowUpdate(row.id, row.status, row.body, row.created_at)
            )
    rank = {"scheduled": 0, "in_progress": 1, "completed": 2, "cancelled": 2}
    for items in found.values():
        items.sort(key=lambda item: (item.created_at, rank.get(item.status, 1)), reverse=True)
    return found


async def _views(conn: AsyncConnection, query: Any, with_updates: bool = True) -> list[WindowView]:
    rows = list(await conn.execute(query))
    updates = await _updates(conn, [r.id for r in rows]) if with_updates else {}
    return [_view(row, updates.get(row.id, [])) for row in rows]


async def get_window(conn: AsyncConnection, window_id: str) -> WindowView | None:
    found = await _views(conn, select(maintenance_windows).where(_T.id == window_id))
    return found[0] if found else None


async def list_windows(
    conn: AsyncConnection,
    *,
    since: int | None = None,
    until: int | None = None,
    states: Collection[str] | None = None,
    limit: int = 50,
    newest_first: bool = True,
    series: str | None = None,
    with_updates: bool = True,
) -> list[WindowView]:
    """Windows whose scheduled time overlaps [since, until), by scheduled start.

    Occurrences of recurring windows are listed one by one; `updates` are newest first.
    """
    query = select(maintenance_windows)
    if since is not None:
        query = query.where(_T.scheduled_until > since)
    if until is not None:
        query = query.where(_T.scheduled_for < until)
    if states is not None:
        query = query.where(_T.status.in_(list(states)))
    if series is not None:
        query = query.where(_T.series == series)
    order = _T.scheduled_for.desc() if newest_first else _T.scheduled_for.asc()
    query = query.order_by(order, _T.id).limit(limit)
    return await _views(conn, query, with_updates)


async def in_effect(conn: AsyncConnection, since: Millis, until: Millis) -> list[WindowView]:
    """Windows that were or are in effect somewhere in [since, until) (for the SLA ledger)."""
    query = select(maintenance_windows).where(
        _T.status != WindowStatus.CANCELLED.value,
        _T.scheduled_for < until,
        or_(_T.scheduled_until > since, _T.completed_at > since),
    )
    return await _views(conn, query.order_by(_T.scheduled_for), with_updates=False)


async def due(conn: AsyncConnection, now: Millis) -> list[WindowView]:
    """Windows that should start or end by now."""
    query = select(maintenance_windows).where(
        or_(
            and_(_T.status == WindowStatus.SCHEDULED.value, _T.scheduled_for <= now),
            and_(_T.status == WindowStatus.IN_PROGRESS.value, _T.scheduled_until <= now),
        )
    )
    return await _views(conn, query.order_by(_T.scheduled_for), with_updates=False)


async def next_change(conn: AsyncConnection) -> Millis | None:
    """When the next scheduled window starts or the next window in progress ends."""
    starts = select(_T.scheduled_for).where(_T.status == WindowStatus.SCHEDULED.value)
    ends = select(_T.scheduled_until).where(_T.status == WindowStatus.IN_PROGRESS.value)
    first = (await conn.execute(starts.order_by(_T.scheduled_for).limit(1))).scalar()
    last = (await conn.execute(ends.order_by(_T.scheduled_until).limit(1))).scalar()
    times = [t for t in (first, last) if t is not None]
    return min(times) if times else None


async def recent_and_open(conn: AsyncConnection, since: Millis) -> list[WindowView]:
    """Windows not over yet and those that ended after `since` (what suppression looks at)."""
    query = select(maintenance_windows).where(
        _T.status != WindowStatus.CANCELLED.value,
        or_(
            _T.status.in_([WindowStatus.SCHEDULED.value, WindowStatus.IN_PROGRESS.value]),
            _T.completed_at >= since,
        ),
    )
    return await _views(conn, query.order_by(_T.scheduled_for), with_updates=False)


# -- recurring windows -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SeriesRow:
    id: str
    source: str  # api | config
    title: str
    message: str
    rrule: str | None
    cron: str | None
    first: datetime | None  # naive local time
    duration_ms: int
    until: Millis | None
    timezone: str
    components: list[str]
    monitors: list[str]
    created_at: Millis
    updated_at: Millis
    created_by: str
    cancelled_at: Millis | None = None

    def recurrence(self) -> Recurrence:
        return Recurrence(
            self.rrule, self.cron, self.first, self.duration_ms, self.until, self.timezone
        )

    def same_plan(self, other: SeriesRow) -> bool:
        """Whether both produce the same windows (ignoring who made them and when)."""
        fields = ("title", "message", "rrule", "cron", "first", "duration_ms", "until")
        same = all(getattr(self, name) == getattr(other, name) for name in fields)
        return same and (self.timezone, self.components, self.monitors) == (
            other.timezone,
            other.components,
            other.monitors,
        )


def _series(row: Any) -> SeriesRow:
    return SeriesRow(
        row.id,
        row.source,
        row.title,
        row.message,
        row.rrule,
        row.cron,
        datetime.fromisoformat(row.first) if row.first else None,
        row.duration_ms,
        row.until,
        row.timezone,
        json.loads(row.components),
        json.loads(row.monitors),
        row.created_at,
        row.updated_at,
        row.created_by,
        row.cancelled_at,
    )


def _series_values(series: SeriesRow) -> dict[str, Any]:
    return {
        "source": series.source,
        "title": series.title,
        "message": series.message,
        "rrule": series.rrule,
        "cron": series.cron,
        "first": series.first.isoformat() if series.first else None,
        "duration_ms": series.duration_ms,
        "until": series.until,
        "timezone": series.timezone,
        "components": _ids(series.components),
        "monitors": _ids(series.monitors),
        "updated_at": series.updated_at,
        "cancelled_at": series.cancelled_at,
    }


async def insert_series(conn: AsyncConnection, series: SeriesRow) -> None:
    values = _series_values(series)
    await conn.execute(
        maintenance_series.insert().values(
            id=series.id, created_at=series.created_at, created_by=series.created_by, **values
        )
    )


async def update_series(conn: AsyncConnection, series: SeriesRow) -> None:
    await conn.execute(
        update(maintenance_series)
        .where(maintenance_series.c.id == series.id)
        .values(**_series_values(series))
    )


async def get_series(conn: AsyncConnection, series_id: str) -> SeriesRow | None:
    query = select(maintenance_series).where(maintenance_series.c.id == series_id)
    row = (await conn.execute(query)).first()
    return _series(row) if row else None


async def list_series(conn: AsyncConnection, *, active_only: bool = True) -> list[SeriesRow]:
    query = select(maintenance_series)
    if active_only:
        query = query.where(maintenance_series.c.cancelled_at.is_(None))
    return [_series(row) for row in await conn.execute(query.order_by(maintenance_series.c.id))]
