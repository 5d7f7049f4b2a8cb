"""Stored check results: idempotent batch insert, listing, history for late data, pruning."""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any

from sqlalchemy import and_, bindparam, delete, func, select
from sqlalchemy.ext.asyncio import AsyncConnection

from uptally.clock import Millis
from uptally.results import Result
from uptally.store.database import Database
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
        "degraded": result.degraded,
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
        bool(row.degraded),
    )


_COLUMNS = ("id", "monitor", "location", "at", "ok", "latency_ms", "error", "message", "degraded")
_ROWS_PER_STATEMENT = 500  # 4,500 parameters: far below both databases' limits


async def insert_results(db: Database, conn: AsyncConnection, batch: Sequence[Result]) -> set[str]:
    """Insert results and return the ids that were new; stored ids are skipped (idempotent).

    The hot path of ingestion: multi-row INSERT … ON CONFLICT DO NOTHING RETURNING id, sent
    straight to the driver (SQLAlchemy's per-row parameter handling cost more than SQLite).
    """
    fresh: set[str] = set()
    for start in range(0, len(batch), _ROWS_PER_STATEMENT):
        chunk = batch[start : start + _ROWS_PER_STATEMENT]
        sql = _insert_sql(db.is_sqlite, len(chunk))
        params: list[Any] = []
        for r in chunk:
            ok: Any = int(r.ok) if db.is_sqlite else r.ok
            degraded: Any = int(r.degraded) if db.is_sqlite else r.degraded
            params.extend(
                (r.id, r.monitor, r.location, r.at, ok, r.latency_ms, r.error, r.message, degraded)
            )
        rows = await conn.exec_driver_sql(sql, tuple(params))
        fresh.update(row[0] for row in rows)
    return fresh


@lru_cache(maxsize=64)
def _insert_sql(sqlite: bool, rows: int) -> str:
    width = len(_COLUMNS)
    if sqlite:
        values = ", ".join(["(" + ", ".join("?" * width) + ")"] * rows)
    else:
        rows_sql = (
            "(" + ", ".join(f"${n * width + i + 1}" for i in range(width)) + ")"
            for n in range(rows)
        )
        values = ", ".join(rows_sql)
    return (
        f"INSERT INTO results ({', '.join(_COLUMNS)}) VALUES {values}"
        " ON CONFLICT (id) DO NOTHING RETURNING id"
    )


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


async def newest_since(conn: AsyncConnection, since: Millis) -> list[Result]:
    """The newest result of each (monitor, location) that reported at or after `since`."""
    newest = (
        select(results.c.monitor, results.c.location, func.max(results.c.at).label("at"))
        .where(results.c.at >= since)
        .group_by(results.c.monitor, results.c.location)
        .subquery()
    )
    rows = await conn.execute(
        select(results).join(
            newest,
            and_(
                results.c.monitor == newest.c.monitor,
                results.c.location == newest.c.location,
                results.c.at == newest.c.at,
            ),
        )
    )
    found: dict[tuple[str, str], Result] = {}
    for row in rows:
        result = _result(row)
        found.setdefault((result.monitor, result.location), result)  # ties: any one will do
    return list(found.values())


async def prune_results(conn: AsyncConnection, monitors: Sequence[str], before: Millis) -> int:
    """Delete results older than `before`, monitor by monitor (uses the (monitor, at) index)."""
    if not monitors:
        return 0
    statement = delete(results).where(
        results.c.monitor == bindparam("m"), results.c.at < bindparam("before")
    )
    outcome = await conn.execute(statement, [{"m": m, "before": before} for m in monitors])
    return max(int(outcome.rowcount or 0), 0)
