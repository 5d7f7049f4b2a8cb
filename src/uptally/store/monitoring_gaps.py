"""The times uptally was not running ("not monitored"), and the alive mark they are found from.

Every serve instance writes its last sign of life (`alive`) every few seconds and at a clean
stop. An instance that starts and finds the newest mark older than `ALIVE_EVERY_MS` twice over
(no instance was running meanwhile) records the gap from that mark until its start-up is done
and it monitors again.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from uptally.clock import Millis
from uptally.store import meta
from uptally.store.database import Database, insert_ignore
from uptally.store.tables import monitoring_gaps

ALIVE = "alive"  # meta: the newest sign of life of any instance (ms)
ALIVE_EVERY_MS = 2_000
# A mark at most this old may belong to an instance still running (a cluster on PostgreSQL).
RECENT_MS = 2 * ALIVE_EVERY_MS


@dataclass(frozen=True, slots=True)
class MonitoringGap:
    start: Millis
    end: Millis
    clean: bool  # stopped cleanly (SIGTERM), else crashed or killed

    @property
    def span(self) -> tuple[Millis, Millis]:
        return (self.start, self.end)


async def mark_alive(db: Database, conn: AsyncConnection, now: Millis) -> None:
    """Record a sign of life (never moving the mark back: another instance's clock may lead)."""
    current = await meta.get(conn, ALIVE)
    if current is None or int(current) < now:
        await meta.put(db, conn, ALIVE, str(now))


async def last_alive(conn: AsyncConnection) -> Millis | None:
    value = await meta.get(conn, ALIVE)
    return None if value is None else int(value)


def away_since(last: Millis | None, now: Millis, clean_stop: Millis | None) -> Millis | None:
    """At start: since when nobody was running (None: someone was, or this is the first start).

    A clean stop that was the last sign of life says so however short the restart; otherwise
    a sign of life within `RECENT_MS` may be another instance's, still running."""
    if last is None:
        return None
    if (clean_stop is not None and clean_stop >= last) or now - last > RECENT_MS:
        return last
    return None


async def record_gap(
    db: Database, conn: AsyncConnection, start: Millis, end: Millis, clean: bool
) -> MonitoringGap:
    """Record a gap (once: instances of a cluster starting together find the same start)."""
    gap = MonitoringGap(start, end, clean)
    row = {"start": start, "end": end, "clean": clean, "created_at": end}
    await conn.execute(insert_ignore(db, monitoring_gaps, ["start"]), [row])
    return gap


async def list_gaps(
    conn: AsyncConnection, since: Millis | None = None, until: Millis | None = None
) -> list[MonitoringGap]:
    """Gaps overlapping [since, until), oldest first."""
    c = monitoring_gaps.c
    query = select(c.start, c.end, c.clean).order_by(c.start)
    if since is not None:
        query = query.where(c.end > since)
    if until is not None:
        query = query.where(c.start < until)
    return [MonitoringGap(r.start, r.end, r.clean) for r in await conn.execute(query)]
