"""Repository of the objects managed at runtime (the caller owns the transaction).

Every change takes the next number of one counter (`meta` key `managed_revision`) and stores it
on the row, so a process that has seen revision N reads exactly what changed after it. Taking
the number locks the counter row until the change commits, so revisions commit in order.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from uptally.clock import Millis
from uptally.store import meta
from uptally.store.database import Database, insert_ignore
from uptally.store.tables import meta as meta_table
from uptally.store.tables_managed import managed_objects

REVISION = "managed_revision"
_CHUNK = 500  # ids in one IN (...)


@dataclass(frozen=True, slots=True)
class ManagedRow:
    kind: str
    id: str
    document: dict[str, Any]
    version: int
    revision: int
    created_at: Millis
    created_by: str
    updated_at: Millis
    updated_by: str
    deleted_at: Millis | None

    @property
    def deleted(self) -> bool:
        return self.deleted_at is not None


def _row(row: Any) -> ManagedRow:
    return ManagedRow(
        row.kind,
        row.id,
        json.loads(row.document),
        row.version,
        row.revision,
        row.created_at,
        row.created_by,
        row.updated_at,
        row.updated_by,
        row.deleted_at,
    )


async def revision(conn: AsyncConnection) -> int:
    value = await meta.get(conn, REVISION)
    return int(value) if value else 0


async def _next_revisions(db: Database, conn: AsyncConnection, count: int = 1) -> int:
    """Take `count` consecutive revisions; return the first."""
    await conn.execute(insert_ignore(db, meta_table, ["key"]), [{"key": REVISION, "value": "0"}])
    locked = select(meta_table.c.value).where(meta_table.c.key == REVISION).with_for_update()
    value = int((await conn.execute(locked)).scalar() or 0)
    await meta.put(db, conn, REVISION, str(value + count))
    return value + 1


async def changed_since(conn: AsyncConnection, seen: int) -> list[ManagedRow]:
    """Rows changed (or deleted) after revision `seen`, oldest change first."""
    query = (
        select(managed_objects)
        .where(managed_objects.c.revision > seen)
        .order_by(managed_objects.c.revision)
    )
    return [_row(row) for row in await conn.execute(query)]


async def get(conn: AsyncConnection, kind: str, object_id: str) -> ManagedRow | None:
    query = select(managed_objects).where(
        and_(managed_objects.c.kind == kind, managed_objects.c.id == object_id)
    )
    row = (await conn.execute(query)).first()
    return None if row is None else _row(row)


async def deleted(conn: AsyncConnection, kind: str) -> list[ManagedRow]:
    """Tombstones of `kind`, the most recently deleted first."""
    query = (
        select(managed_objects)
        .where(and_(managed_objects.c.kind == kind, managed_objects.c.deleted_at.is_not(None)))
        .order_by(managed_objects.c.deleted_at.desc(), managed_objects.c.id)
    )
    return [_row(row) for row in await conn.execute(query)]


async def _get_many(conn: AsyncConnection, kind: str, ids: list[str]) -> dict[str, ManagedRow]:
    found: dict[str, ManagedRow] = {}
    for offset in range(0, len(ids), _CHUNK):
        query = select(managed_objects).where(
            and_(
                managed_objects.c.kind == kind,
                managed_objects.c.id.in_(ids[offset : offset + _CHUNK]),
            )
        )
        found.update((row.id, _row(row)) for row in await conn.execute(query))
    return found


async def put(
    db: Database,
    conn: AsyncConnection,
    kind: str,
    object_id: str,
    document: dict[str, Any],
    actor: str,
    now: Millis,
    *,
    expected: int | None,
) -> ManagedRow | None:
    """Create the object (`expected` 0: it must not exist, or exist deleted) or change it
    (`expected` its current version; None: any). None if the version did not match."""
    (row,) = await put_many(db, conn, kind, [(object_id, document, expected)], actor, now)
    return row


async def put_many(
    db: Database,
    conn: AsyncConnection,
    kind: str,
    items: Sequence[tuple[str, dict[str, Any], int | None]],
    actor: str,
    now: Millis,
) -> list[ManagedRow | None]:
    """`put` of several objects (distinct ids) with a few statements: (id, document, expected)
    each, revisions in the order given."""
    ids = [object_id for object_id, _, _ in items]
    if len(set(ids)) != len(ids):
        raise ValueError("put_many: an id twice")
    first = await _next_revisions(db, conn, len(items))
    current = await _get_many(conn, kind, ids)
    out: list[ManagedRow | None] = []
    inserts: list[dict[str, Any]] = []
    for offset, (object_id, document, expected) in enumerate(items):
        number = first + offset
        text = json.dumps(document, sort_keys=True, separators=(",", ":"))
        row = current.get(object_id)
        if row is None:
            if expected not in (None, 0):
                out.append(None)
                continue
            inserts.append(
                {
                    "kind": kind,
                    "id": object_id,
                    "document": text,
                    "version": 1,
                    "revision": number,
                    "created_at": now,
                    "created_by": actor,
                    "updated_at": now,
                    "updated_by": actor,
                    "deleted_at": None,
                }
            )
            stored = ManagedRow(
                kind, object_id, json.loads(text), 1, number, now, actor, now, actor, None
            )
            out.append(stored)
        else:
            out.append(await _change(conn, row, text, number, actor, now, expected))
    if inserts:
        await conn.execute(managed_objects.insert(), inserts)
    return out


async def _change(
    conn: AsyncConnection,
    current: ManagedRow,
    text: str,
    number: int,
    actor: str,
    now: Millis,
    expected: int | None,
) -> ManagedRow | None:
    live_version = 0 if current.deleted else current.version
    if expected is not None and expected != live_version:
        return None
    values: dict[str, Any] = {
        "document": text,
        "version": current.version + 1,
        "revision": number,
        "updated_at": now,
        "updated_by": actor,
        "deleted_at": None,
    }
    if current.deleted:  # made again: a new life of the same id (its history stays one)
        values |= {"created_at": now, "created_by": actor}
    await conn.execute(
        update(managed_objects)
        .where(
            and_(
                managed_objects.c.kind == current.kind,
                managed_objects.c.id == current.id,
                managed_objects.c.version == current.version,
            )
        )
        .values(**values)
    )
    return await get(conn, current.kind, current.id)


async def delete(
    db: Database,
    conn: AsyncConnection,
    kind: str,
    object_id: str,
    actor: str,
    now: Millis,
    *,
    expected: int | None,
) -> ManagedRow | None:
    """Mark the object deleted (its row stays: history names it). None: absent or changed."""
    current = await get(conn, kind, object_id)
    if current is None or current.deleted:
        return None
    if expected is not None and expected != current.version:
        return None
    number = await _next_revisions(db, conn)
    await conn.execute(
        update(managed_objects)
        .where(and_(managed_objects.c.kind == kind, managed_objects.c.id == object_id))
        .values(
            version=current.version + 1,
            revision=number,
            updated_at=now,
            updated_by=actor,
            deleted_at=now,
        )
    )
    return await get(conn, kind, object_id)
