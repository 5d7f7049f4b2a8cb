"""Stored audit entries and the chain head (SQL only; the hashing is uptally.audit's job)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Collection
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, func, insert, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection

from uptally.clock import Millis
from uptally.store.tables_trust import audit_head, audit_log

GENESIS_HASH = "0" * 64
_HEAD = 1


@dataclass(frozen=True, slots=True)
class AuditRow:
    seq: int
    at: Millis
    actor: str
    action: str
    target: str
    details: str  # canonical JSON
    prev_hash: str
    hash: str


@dataclass(frozen=True, slots=True)
class AuditFilter:
    actor: str | None = None
    action: str | None = None  # exact, or a prefix ending in "*": "token.*"
    target: str | None = None
    since: Millis | None = None
    until: Millis | None = None
    after: int | None = None  # seq
    before: int | None = None  # seq
    limit: int = 100
    newest_first: bool = True


async def claim_next(conn: AsyncConnection, count: int = 1) -> tuple[int, str]:
    """Lock the chain head for this transaction and take `count` seqs; return (the first of
    them, the previous hash)."""
    bump = update(audit_head).where(audit_head.c.id == _HEAD).values(seq=audit_head.c.seq + count)
    if (await conn.execute(bump)).rowcount == 0:
        dialect = sqlite if conn.dialect.name == "sqlite" else postgresql
        genesis: Any = dialect.insert(audit_head).values(id=_HEAD, seq=0, hash=GENESIS_HASH)
        await conn.execute(genesis.on_conflict_do_nothing(index_elements=["id"]))
        await conn.execute(bump)
    row = (
        await conn.execute(
            select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == _HEAD)
        )
    ).one()
    return int(row.seq) - count + 1, str(row.hash)


async def insert_entry(conn: AsyncConnection, row: AuditRow) -> None:
    await insert_entries(conn, [row])


async def insert_entries(conn: AsyncConnection, rows: list[AuditRow]) -> None:
    """Entries that follow each other in the chain, the last one the new head."""
    await conn.execute(insert(audit_log), [_values(row) for row in rows])
    await conn.execute(
        update(audit_head).where(audit_head.c.id == _HEAD).values(hash=rows[-1].hash)
    )


async def head(conn: AsyncConnection) -> tuple[int, str] | None:
    """The chain head as recorded beside the log (None before the first entry)."""
    row = (
        await conn.execute(
            select(audit_head.c.seq, audit_head.c.hash).where(audit_head.c.id == _HEAD)
        )
    ).first()
    return (int(row.seq), str(row.hash)) if row else None


async def walk(conn: AsyncConnection, chunk: int = 5000) -> AsyncIterator[AuditRow]:
    """Every entry in seq order, read in chunks (the log can be long)."""
    after: int | None = None
    while True:
        query = select(audit_log).order_by(audit_log.c.seq).limit(chunk)
        if after is not None:
            query = query.where(audit_log.c.seq > after)
        rows = [_row(r) for r in await conn.execute(query)]
        for row in rows:
            yield row
        if len(rows) < chunk:
            return
        after = rows[-1].seq


async def list_entries(conn: AsyncConnection, where: AuditFilter) -> list[AuditRow]:
    conditions: list[ColumnElement[bool]] = []
    if where.actor is not None:
        conditions.append(audit_log.c.actor == where.actor)
    if where.action is not None:
        if where.action.endswith("*"):
            prefix = where.action[:-1].replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
            conditions.append(audit_log.c.action.like(prefix + "%", escape="\\"))
        else:
            conditions.append(audit_log.c.action == where.action)
    if where.target is not None:
        conditions.append(audit_log.c.target == where.target)
    if where.since is not None:
        conditions.append(audit_log.c.at >= where.since)
    if where.until is not None:
        conditions.append(audit_log.c.at < where.until)
    if where.after is not None:
        conditions.append(audit_log.c.seq > where.after)
    if where.before is not None:
        conditions.append(audit_log.c.seq < where.before)
    order = audit_log.c.seq.desc() if where.newest_first else audit_log.c.seq
    query = select(audit_log).where(*conditions).order_by(order).limit(where.limit)
    return [_row(r) for r in await conn.execute(query)]


async def with_actions(
    conn: AsyncConnection,
    actions: Collection[str],
    *,
    target: str | None = None,
    since: Millis | None = None,
    limit: int = 10_000,
) -> list[AuditRow]:
    """Entries of any of `actions` (of `target`, since `since`), newest first."""
    conditions: list[ColumnElement[bool]] = [audit_log.c.action.in_(list(actions))]
    if target is not None:
        conditions.append(audit_log.c.target == target)
    if since is not None:
        conditions.append(audit_log.c.at >= since)
    query = select(audit_log).where(*conditions).order_by(audit_log.c.seq.desc()).limit(limit)
    return [_row(r) for r in await conn.execute(query)]


async def count(conn: AsyncConnection) -> int:
    return int((await conn.execute(select(func.count()).select_from(audit_log))).scalar_one())


def _values(row: AuditRow) -> dict[str, Any]:
    return {
        "seq": row.seq,
        "at": row.at,
        "actor": row.actor,
        "action": row.action,
        "target": row.target,
        "details": row.details,
        "prev_hash": row.prev_hash,
        "hash": row.hash,
    }


def _row(r: Any) -> AuditRow:
    return AuditRow(
        int(r.seq), int(r.at), r.actor, r.action, r.target, r.details, r.prev_hash, r.hash
    )
