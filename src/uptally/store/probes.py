"""Remote probe locations as the hub sees them, and the gaps their agents had to drop."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from uptally.clock import Millis
from uptally.store.database import Database, upsert
from uptally.store.tables import probe_gaps, probes

_COLUMNS = [
    "state",
    "since",
    "last_contact_at",
    "version",
    "address",
    "clock_offset_ms",
    "queue_depth",
    "dropped_total",
    "rejected_total",
    "canaries",
    "updated_at",
]


@dataclass(slots=True)
class ProbeRow:
    name: str
    state: str  # up | degraded | offline | never
    since: Millis | None = None
    last_contact_at: Millis | None = None
    version: str | None = None
    address: str | None = None
    clock_offset_ms: int | None = None
    queue_depth: int | None = None
    dropped_total: int = 0
    rejected_total: int = 0
    canaries: list[dict[str, Any]] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class Gap:
    """Results an agent dropped from its full queue, summarised per monitor."""

    location: str
    monitor: str
    first_at: Millis
    last_at: Millis
    count: int
    failures: int


async def load_probes(conn: AsyncConnection) -> list[ProbeRow]:
    return [
        ProbeRow(
            r.name,
            r.state,
            r.since,
            r.last_contact_at,
            r.version,
            r.address,
            r.clock_offset_ms,
            r.queue_depth,
            r.dropped_total,
            r.rejected_total,
            json.loads(r.canaries),
        )
        for r in await conn.execute(select(probes))
    ]


async def save_probes(
    db: Database, conn: AsyncConnection, rows: Iterable[ProbeRow], now: Millis
) -> None:
    values = [
        {
            "name": r.name,
            "state": r.state,
            "since": r.since,
            "last_contact_at": r.last_contact_at,
            "version": r.version,
            "address": r.address,
            "clock_offset_ms": r.clock_offset_ms,
            "queue_depth": r.queue_depth,
            "dropped_total": r.dropped_total,
            "rejected_total": r.rejected_total,
            "canaries": json.dumps(r.canaries, separators=(",", ":")),
            "updated_at": now,
        }
        for r in rows
    ]
    if values:
        await conn.execute(upsert(db, probes, ["name"], _COLUMNS), values)


async def insert_gaps(conn: AsyncConnection, gaps: Iterable[Gap], now: Millis) -> None:
    rows = [
        {
            "location": g.location,
            "monitor": g.monitor,
            "first_at": g.first_at,
            "last_at": g.last_at,
            "count": g.count,
            "failures": g.failures,
            "reported_at": now,
        }
        for g in gaps
    ]
    if rows:
        await conn.execute(probe_gaps.insert(), rows)


async def list_gaps(
    conn: AsyncConnection, location: str | None = None, limit: int = 100
) -> list[Gap]:
    query = select(probe_gaps)
    if location is not None:
        query = query.where(probe_gaps.c.location == location)
    rows = await conn.execute(query.order_by(probe_gaps.c.seq.desc()).limit(limit))
    return [
        Gap(m["location"], m["monitor"], m["first_at"], m["last_at"], m["count"], m["failures"])
        for m in (row._mapping for row in rows)  # `count` would be the tuple method on the row
    ]
