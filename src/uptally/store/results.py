"""Stored check results: idempotent batch insert, listing, history for late data, pruning."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, bindparam, delete, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from uptally.clock import Millis
from uptally.results import Result
from uptally.store.database import Database, insert_ignore
from uptally.store.tables import results


def _row(result: Result) -> dict[str, object]:
    return {
        "id": result.id,
        "monitor": result.monitor,
        "location": result.location,
        "at": result.at,
        "ok": result.ok,
        "latency_ms": result.latency_ms,
        "error": result.error,
        "message": result.message,
    }


def _result(row: Any) -> Result:
    return Result(
        row.id,
        row.monitor,
        row.location,
        row.at,
        bool(row.ok),
        row.latency_ms,
        row.error,
        row.message or "",
    )


async def insert_results(db: Database, conn: AsyncConnection, batch: Sequence[Result]) -> None:
    """Insert results; ids already stored are skipped, so replays never double-count."""
    if batch:
        await conn.execute(insert_ignore(db, results, ["id"]), [_row(r) for r in batch])


async def existing_ids(conn: AsyncConnection, ids: Sequence[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        rows = await conn.execute(select(results.c.id).where(results.c.id.in_(chunk)))
        found.update(row.id for row in rows)
    return found


async def list_results(
    conn: AsyncConnection,
    monitor: str,
    *,
    location: str | None = None,
    since: Millis | None = None,
    until: Millis | None = None,
    limit: int = 100,
) -> list[Result]:
    query = select(results).where(results.c.monitor == monitor)
    if location is not None:
        query = query.where(results.c.location == location)
    if since is not None:
        query = query.where(results.c.at >= since)
    if until is not None:
        query = query.where(results.c.at < until)
    rows = await conn.execute(query.order_by(results.c.at.desc()).limit(limit))
    return [_result(row) for row in rows]


async def history_from(
    conn: AsyncConnection, monitor: str, location: str, late_at: Millis
) -> tuple[Millis | None, list[Result]]:
    """The newest stored success before `late_at` (the reset point) and every result since."""
    reset = (
        await conn.execute(
            select(func.max(results.c.at)).where(
                and_(
                    results.c.monitor == monitor,
                    results.c.location == location,
                    results.c.ok.is_(True),
                    results.c.at < late_at,
                )
            )
        )
    ).scalar()
    query = select(results).where(results.c.monitor == monitor, results.c.location == location)
    if reset is not None:
        query = query.where(results.c.at >= reset)
    rows = await conn.execute(query.order_by(results.c.at))
    return reset, [_result(row) for row in rows]


async def prune_results(conn: AsyncConnection, monitors: Sequence[str], before: Millis) -> int:
    """Delete results older than `before`, monitor by monitor (uses the (monitor, at) index)."""
    if not monitors:
        return 0
    statement = delete(results).where(
        results.c.monitor == bindparam("m"), results.c.at < bindparam("before")
    )
    outcome = await conn.execute(statement, [{"m": m, "before": before} for m in monitors])
    return max(int(outcome.rowcount or 0), 0)
