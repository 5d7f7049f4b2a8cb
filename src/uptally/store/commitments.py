"""Communication commitments of incidents: kept, reminded, met or missed (repository)."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from uptally.clock import Millis
from uptally.incidents.commitments import Commitment, Kind, State
from uptally.store.tables_incidents import commitments


async def save_commitments(conn: AsyncConnection, items: Iterable[Commitment]) -> None:
    for item in items:
        values = {
            "state": item.state.value,
            "due_at": item.due_at,
            "met_at": item.met_at,
            "reminded_at": item.reminded_at,
            "overdue_at": item.overdue_at,
        }
        changed = await conn.execute(
            update(commitments).where(commitments.c.id == item.id).values(**values)
        )
        if not changed.rowcount:
            await conn.execute(
                insert(commitments),
                [
                    {
                        **values,
                        "id": item.id,
                        "incident": item.incident,
                        "kind": item.kind.value,
                        "opened_at": item.opened_at,
                    }
                ],
            )


async def load_commitments(
    conn: AsyncConnection,
    *,
    incident: str | None = None,
    unfulfilled: bool = False,
    state: str | None = None,
    limit: int = 1000,
) -> list[Commitment]:
    query = select(commitments)
    if incident is not None:
        query = query.where(commitments.c.incident == incident)
    if unfulfilled:
        query = query.where(commitments.c.met_at.is_(None))
    if state is not None:
        query = query.where(commitments.c.state == state)
    rows = await conn.execute(
        query.order_by(commitments.c.opened_at, commitments.c.due_at, commitments.c.id).limit(limit)
    )
    return [_commitment(r) for r in rows]


async def commitment_counts(
    conn: AsyncConnection, since: Millis | None, until: Millis | None
) -> dict[tuple[str, str], int]:
    """(kind, state) → how many commitments, of those due within [since, until)."""
    query = select(commitments.c.kind, commitments.c.state, func.count()).group_by(
        commitments.c.kind, commitments.c.state
    )
    if since is not None:
        query = query.where(commitments.c.due_at >= since)
    if until is not None:
        query = query.where(commitments.c.due_at < until)
    return {(r[0], r[1]): int(r[2]) for r in await conn.execute(query)}


def _commitment(r: Row[Any]) -> Commitment:
    return Commitment(
        r.id,
        r.incident,
        Kind(r.kind),
        r.opened_at,
        r.due_at,
        State(r.state),
        r.met_at,
        r.reminded_at,
        r.overdue_at,
    )
