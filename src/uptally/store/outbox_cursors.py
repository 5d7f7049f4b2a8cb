"""Cursors of outbox consumers: how far each got, and sequence numbers seen missing.

A consumer's cursor row is updated first in its transaction (the write lock on SQLite, a row
lock on PostgreSQL), so one instance consumes at a time. Callers own the transaction.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field

from sqlalchemy import func, or_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from uptally.clock import Millis
from uptally.store.database import Database, insert_ignore
from uptally.store.outbox import StoredEvent
from uptally.store.tables import outbox
from uptally.store.tables_incidents import outbox_cursors

MAX_GAPS = 1000
STARTUP_LOOKBACK_MS = 3_600_000  # a new consumer starts with the last hour's events


@dataclass(slots=True)
class Cursor:
    name: str
    seq: int
    gaps: dict[int, Millis] = field(default_factory=dict)  # missing seq → first seen missing


async def take_cursor(db: Database, conn: AsyncConnection, name: str, now: Millis) -> Cursor:
    """Lock the consumer's cursor for this transaction (creating it on first use)."""
    locked = await conn.execute(
        update(outbox_cursors).where(outbox_cursors.c.name == name).values(updated_at=now)
    )
    if not locked.rowcount:
        start = (
            await conn.execute(
                select(func.max(outbox.c.seq)).where(
                    outbox.c.created_at < now - STARTUP_LOOKBACK_MS
                )
            )
        ).scalar() or 0
        await conn.execute(
            insert_ignore(db, outbox_cursors, ["name"]),
            [{"name": name, "seq": start, "gaps": "{}", "updated_at": now}],
        )
        await conn.execute(
            update(outbox_cursors).where(outbox_cursors.c.name == name).values(updated_at=now)
        )
    row = (await conn.execute(select(outbox_cursors).where(outbox_cursors.c.name == name))).one()
    return Cursor(name, row.seq, {int(k): v for k, v in json.loads(row.gaps).items()})


async def events_after(conn: AsyncConnection, cursor: Cursor, limit: int) -> list[StoredEvent]:
    """Events past the cursor, and those that filled a gap since (in seq order)."""
    condition = outbox.c.seq > cursor.seq
    if cursor.gaps:
        condition = or_(condition, outbox.c.seq.in_(sorted(cursor.gaps)))
    rows = await conn.execute(select(outbox).where(condition).order_by(outbox.c.seq).limit(limit))
    return [
        StoredEvent(r.seq, r.id, r.kind, r.subject, r.at, json.loads(r.data), r.created_at)
        for r in rows
    ]


def advanced(cursor: Cursor, seqs: Iterable[int], now: Millis, gap_ttl: Millis) -> Cursor:
    """The cursor after `seqs` were consumed: seqs skipped on the way are remembered a while,
    since PostgreSQL hands out sequence numbers before commit (a smaller one may appear)."""
    seen = set(seqs)
    gaps = {s: t for s, t in cursor.gaps.items() if s not in seen and now - t < gap_ttl}
    top = max((s for s in seen if s > cursor.seq), default=cursor.seq)
    if top - cursor.seq - 1 <= MAX_GAPS * 10:
        for missing in range(cursor.seq + 1, top):
            if missing not in seen:
                gaps.setdefault(missing, now)
    if len(gaps) > MAX_GAPS:
        gaps = dict(sorted(gaps.items())[-MAX_GAPS:])
    return Cursor(cursor.name, top, gaps)


async def save_cursor(conn: AsyncConnection, cursor: Cursor, now: Millis) -> None:
    await conn.execute(
        update(outbox_cursors)
        .where(outbox_cursors.c.name == cursor.name)
        .values(seq=cursor.seq, gaps=json.dumps(cursor.gaps), updated_at=now)
    )


async def latest_seq(conn: AsyncConnection) -> int:
    """The newest outbox seq (a cheap look before taking a cursor's lock)."""
    return int((await conn.execute(select(func.max(outbox.c.seq)))).scalar() or 0)
