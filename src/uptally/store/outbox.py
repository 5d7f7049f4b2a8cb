"""The outbox: events written in the same transaction as the change that caused them."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncConnection

from uptally.clock import Millis
from uptally.events import Event
from uptally.store.tables import outbox


@dataclass(frozen=True, slots=True)
class StoredEvent:
    seq: int
    id: str
    kind: str
    subject: str
    at: Millis
    data: dict[str, Any]
    created_at: Millis


async def append_events(conn: AsyncConnection, events: Iterable[Event], now: Millis) -> None:
    rows = [
        {
            "id": e.id,
            "kind": e.kind.value,
            "subject": e.subject,
            "at": e.at,
            "data": json.dumps(dict(e.data), separators=(",", ":"), default=str),
            "created_at": now,
        }
        for e in events
    ]
    if rows:
        await conn.execute(outbox.insert(), rows)


async def list_events(
    conn: AsyncConnection, *, after_seq: int = 0, kind: str | None = None, limit: int = 100
) -> list[StoredEvent]:
    query = select(outbox).where(outbox.c.seq > after_seq)
    if kind is not None:
        query = query.where(outbox.c.kind == kind)
    rows = await conn.execute(query.order_by(outbox.c.seq).limit(limit))
    return [
        StoredEvent(r.seq, r.id, r.kind, r.subject, r.at, json.loads(r.data), r.created_at)
        for r in rows
    ]
