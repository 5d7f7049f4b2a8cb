"""Stored outages: detected ones from the evaluator and manual (backfilled) ones."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, delete, or_, select
from sqlalchemy.ext.asyncio import AsyncConnection

from uptally.clock import Millis
from uptally.evaluator import Outage, Span
from uptally.store.database import Database, upsert
from uptally.store.tables import outages

_COLUMNS = ["monitor", "component", "start", "end", "verified", "locations", "reason", "updated_at"]


@dataclass(frozen=True, slots=True)
class StoredOutage:
    outage: Outage
    component: str | None
    source: str  # detected | manual


def _locations_json(outage: Outage) -> str:
    return json.dumps(
        {
            name: {"start": span.start, "end": span.end}
            for name, span in sorted(outage.locations.items())
        },
        separators=(",", ":"),
    )


async def save_outages(
    db: Database, conn: AsyncConnection, items: Iterable[Outage], now: Millis
) -> None:
    rows = [
        {
            "id": o.id,
            "monitor": o.monitor,
            "component": None,
            "start": o.start,
            "end": o.end,
            "verified": o.verified,
            "locations": _locations_json(o),
            "reason": o.reason,
            "source": "detected",
            "created_at": now,
            "updated_at": now,
        }
        for o in items
    ]
    if rows:
        await conn.execute(upsert(db, outages, ["id"], _COLUMNS), rows)


async def delete_outages(conn: AsyncConnection, ids: Iterable[str]) -> None:
    ids = list(ids)
    if ids:
        await conn.execute(
            delete(outages).where(outages.c.id.in_(ids), outages.c.source == "detected")
        )


async def insert_manual(
    conn: AsyncConnection, outage: Outage, component: str | None, now: Millis
) -> None:
    await conn.execute(
        outages.insert().values(
            id=outage.id,
            monitor=outage.monitor or None,
            component=component,
            start=outage.start,
            end=outage.end,
            verified=True,
            locations=_locations_json(outage),
            reason=outage.reason,
            source="manual",
            created_at=now,
            updated_at=now,
        )
    )


def _stored(row: Any) -> StoredOutage:
    locations = {
        name: Span(span["start"], span["end"]) for name, span in json.loads(row.locations).items()
    }
    outage = Outage(
        row.id,
        row.monitor or "",
        row.start,
        row.end,
        bool(row.verified),
        locations,
        row.reason,
    )
    return StoredOutage(outage, row.component, row.source)


async def recent_detected(conn: AsyncConnection, since: Millis) -> list[Outage]:
    """Detected outages still open or ended after `since` (to restore the evaluator)."""
    query = select(outages).where(
        outages.c.source == "detected", or_(outages.c.end.is_(None), outages.c.end >= since)
    )
    return [_stored(row).outage for row in await conn.execute(query)]


async def list_outages(
    conn: AsyncConnection,
    *,
    monitors: Iterable[str] | None = None,
    component: str | None = None,
    since: Millis | None = None,
    until: Millis | None = None,
    verified_only: bool = False,
    limit: int = 500,
) -> list[StoredOutage]:
    query = select(outages)
    filters: list[ColumnElement[bool]] = []
    if monitors is not None:
        filters.append(outages.c.monitor.in_(list(monitors)))
    if component is not None:
        filters.append(outages.c.component == component)
    if filters:
        query = query.where(or_(*filters))
    if since is not None:
        query = query.where(or_(outages.c.end.is_(None), outages.c.end > since))
    if until is not None:
        query = query.where(outages.c.start < until)
    if verified_only:
        query = query.where(outages.c.verified.is_(True))
    rows = await conn.execute(query.order_by(outages.c.start.desc()).limit(limit))
    return [_stored(row) for row in rows]


async def get_outage(conn: AsyncConnection, outage_id: str) -> StoredOutage | None:
    row = (await conn.execute(select(outages).where(outages.c.id == outage_id))).first()
    return _stored(row) if row else None
