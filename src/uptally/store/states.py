"""Persisted evaluator state: each location's timeline and each monitor's state."""

from __future__ import annotations

import json
from collections.abc import Iterable

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from uptally.clock import Millis
from uptally.evaluator import LocationSnapshot, LocationState, MonitorState, MonitorStatus
from uptally.results import Result
from uptally.store.database import Database, upsert
from uptally.store.tables import location_states, monitor_states

_LOCATION_COLUMNS = [
    "state",
    "since",
    "consecutive_failures",
    "last_id",
    "last_at",
    "last_ok",
    "last_latency_ms",
    "last_error",
    "last_message",
    "runs",
]


async def save_locations(
    db: Database, conn: AsyncConnection, snaps: Iterable[LocationSnapshot]
) -> None:
    rows = []
    for snap in snaps:
        last = snap.last
        rows.append(
            {
                "monitor": snap.monitor,
                "location": snap.location,
                "state": snap.state.value,
                "since": snap.since,
                "consecutive_failures": snap.consecutive_failures,
                "last_id": last.id if last else None,
                "last_at": last.at if last else None,
                "last_ok": last.ok if last else None,
                "last_latency_ms": last.latency_ms if last else None,
                "last_error": last.error if last else None,
                "last_message": last.message if last else None,
                "runs": json.dumps(snap.runs, separators=(",", ":")),
            }
        )
    if rows:
        await conn.execute(
            upsert(db, location_states, ["monitor", "location"], _LOCATION_COLUMNS), rows
        )


async def load_locations(
    conn: AsyncConnection, monitor: str | None = None
) -> list[LocationSnapshot]:
    query = select(location_states)
    if monitor is not None:
        query = query.where(location_states.c.monitor == monitor)
    snaps = []
    for row in await conn.execute(query):
        last = None
        if row.last_id is not None:
            last = Result(
                row.last_id,
                row.monitor,
                row.location,
                row.last_at,
                bool(row.last_ok),
                row.last_latency_ms,
                row.last_error,
                row.last_message or "",
            )
        runs = tuple(
            (
                None if ok is None else bool(ok),
                int(first),
                int(last_at),
                int(count),
                error,
                message or "",
            )
            for ok, first, last_at, count, error, message in json.loads(row.runs)
        )
        snaps.append(
            LocationSnapshot(
                row.monitor,
                row.location,
                LocationState(row.state),
                row.since,
                row.consecutive_failures,
                last,
                runs,
            )
        )
    return snaps


async def save_statuses(
    db: Database, conn: AsyncConnection, statuses: Iterable[MonitorStatus], now: Millis
) -> None:
    rows = [
        {"monitor": s.monitor, "state": s.state.value, "since": s.since, "updated_at": now}
        for s in statuses
    ]
    if rows:
        await conn.execute(
            upsert(db, monitor_states, ["monitor"], ["state", "since", "updated_at"]), rows
        )


async def load_statuses(conn: AsyncConnection) -> list[MonitorStatus]:
    rows = await conn.execute(select(monitor_states))
    return [MonitorStatus(row.monitor, MonitorState(row.state), row.since) for row in rows]


async def forget_monitor(conn: AsyncConnection, monitor: str) -> None:
    await conn.execute(delete(location_states).where(location_states.c.monitor == monitor))
    await conn.execute(delete(monitor_states).where(monitor_states.c.monitor == monitor))
