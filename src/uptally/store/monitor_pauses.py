"""Monitor pauses: when a monitor was paused and resumed, and by whom (the caller owns the
transaction)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from uptally.clock import Millis
from uptally.store.tables_managed import monitor_pauses


@dataclass(frozen=True, slots=True)
class MonitorPause:
    monitor: str
    start: Millis
    end: Millis | None  # None while paused
    paused_by: str
    resumed_by: str | None = None

    @property
    def open(self) -> bool:
        return self.end is None


_PIECE = 500  # monitors named in one statement
_COLUMNS = (
    monitor_pauses.c.monitor,
    monitor_pauses.c.start,
    monitor_pauses.c.end,
    monitor_pauses.c.paused_by,
    monitor_pauses.c.resumed_by,
)


async def open_pause(conn: AsyncConnection, monitor: str) -> MonitorPause | None:
    """The monitor's pause in effect, if it is paused."""
    c = monitor_pauses.c
    query = select(*_COLUMNS).where(c.monitor == monitor, c.end.is_(None)).limit(1)
    row = (await conn.execute(query)).first()
    return None if row is None else MonitorPause(*row)


async def pause(conn: AsyncConnection, monitor: str, at: Millis, actor: str) -> MonitorPause:
    """Record that `monitor` is paused from `at` (the caller checked it was running)."""
    await conn.execute(insert(monitor_pauses).values(monitor=monitor, start=at, paused_by=actor))
    return MonitorPause(monitor, at, None, actor)


async def resume(
    conn: AsyncConnection, monitor: str, at: Millis, actor: str
) -> MonitorPause | None:
    """End the monitor's open pause at `at`; None if it was not paused."""
    current = await open_pause(conn, monitor)
    if current is None:
        return None
    c = monitor_pauses.c
    end = max(at, current.start)
    await conn.execute(
        update(monitor_pauses)
        .where(c.monitor == monitor, c.end.is_(None))
        .values(end=end, resumed_by=actor)
    )
    return MonitorPause(monitor, current.start, end, current.paused_by, actor)


async def list_pauses(
    conn: AsyncConnection,
    since: Millis | None = None,
    until: Millis | None = None,
    monitors: list[str] | None = None,
) -> list[MonitorPause]:
    """Pauses overlapping [since, until) (open ones included), oldest first."""
    c = monitor_pauses.c
    query = select(*_COLUMNS).order_by(c.start, c.id)
    if since is not None:
        query = query.where(or_(c.end.is_(None), c.end > since))
    if until is not None:
        query = query.where(c.start < until)
    if monitors is None:
        return [MonitorPause(*row) for row in await conn.execute(query)]
    found: list[MonitorPause] = []
    # In pieces: SQLite keeps each prepared statement in every pooled connection that ran it,
    # and one naming 10,000 monitors is 2 MB (a piece of 500: 0.1 MB).
    for start in range(0, len(monitors), _PIECE):
        piece = query.where(c.monitor.in_(monitors[start : start + _PIECE]))
        found.extend(MonitorPause(*row) for row in await conn.execute(piece))
    return sorted(found, key=lambda pause: pause.start)  # each monitor's own are in order


async def paused_monitors(conn: AsyncConnection) -> dict[str, MonitorPause]:
    """Every monitor paused now, with its pause."""
    c = monitor_pauses.c
    query = select(*_COLUMNS).where(c.end.is_(None))
    return {row.monitor: MonitorPause(*row) for row in await conn.execute(query)}


def spans_by_monitor(
    pauses: list[MonitorPause], now: Millis
) -> dict[str, list[tuple[Millis, Millis]]]:
    """monitor -> its paused spans, an open pause running until `now`."""
    spans: dict[str, list[tuple[Millis, Millis]]] = {}
    for p in pauses:
        end = now if p.end is None else p.end
        if end > p.start:
            spans.setdefault(p.monitor, []).append((p.start, end))
    return spans
