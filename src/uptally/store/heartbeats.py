"""Heartbeat monitors' tokens, their last ping, and the pings themselves (with a body excerpt)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from sqlalchemy import bindparam, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from uptally.clock import Millis
from uptally.store.database import Database, insert_ignore
from uptally.store.tables import heartbeats, pings


@dataclass(frozen=True, slots=True)
class Ping:
    id: str
    monitor: str
    at: Millis
    kind: str  # success | start | fail | exit | log
    exit_code: int | None
    method: str
    remote: str | None
    user_agent: str | None
    body: str | None
    rid: str | None = None
    duration_ms: int | None = None  # an end ping's run time, from its start


@dataclass(slots=True)
class HeartbeatRow:
    monitor: str
    token: str
    created_at: Millis
    last_ping_at: Millis | None
    last_kind: str | None
    started_at: Millis | None
    started_rid: str | None = None


async def load_heartbeats(conn: AsyncConnection) -> list[HeartbeatRow]:
    rows = await conn.execute(select(heartbeats))
    return [
        HeartbeatRow(
            r.monitor,
            r.token,
            r.created_at,
            r.last_ping_at,
            r.last_kind,
            r.started_at,
            r.started_rid,
        )
        for r in rows
    ]


async def register(
    db: Database, conn: AsyncConnection, monitor: str, token: str, now: Millis
) -> None:
    """Create the row if missing, or set the token (a token from the config wins)."""
    await conn.execute(
        insert_ignore(db, heartbeats, ["monitor"]),
        [{"monitor": monitor, "token": token, "created_at": now}],
    )
    await conn.execute(
        update(heartbeats)
        .where(heartbeats.c.monitor == monitor, heartbeats.c.token != token)
        .values(token=token)
    )


async def insert_pings(db: Database, conn: AsyncConnection, items: Iterable[Ping]) -> None:
    rows = [
        {
            "id": p.id,
            "monitor": p.monitor,
            "at": p.at,
            "kind": p.kind,
            "exit_code": p.exit_code,
            "method": p.method,
            "remote": p.remote,
            "user_agent": p.user_agent,
            "body": p.body,
            "rid": p.rid,
            "duration_ms": p.duration_ms,
        }
        for p in items
    ]
    if rows:
        await conn.execute(insert_ignore(db, pings, ["id"]), rows)


async def save_last(conn: AsyncConnection, rows: Iterable[HeartbeatRow]) -> None:
    latest = {row.monitor: row for row in rows}  # several pings in one batch: the last counts
    if not latest:
        return
    statement = (
        update(heartbeats)
        .where(heartbeats.c.monitor == bindparam("m"))
        .values(
            last_ping_at=bindparam("p"),
            last_kind=bindparam("k"),
            started_at=bindparam("s"),
            started_rid=bindparam("r"),
        )
    )
    await conn.execute(
        statement,
        [
            {
                "m": r.monitor,
                "p": r.last_ping_at,
                "k": r.last_kind,
                "s": r.started_at,
                "r": r.started_rid,
            }
            for r in latest.values()
        ],
    )


async def recent_pings(conn: AsyncConnection, since: Millis) -> dict[str, dict[str, Millis]]:
    """The newest ping of each kind per monitor since `since` (to repair state after a crash)."""
    query = (
        select(pings.c.monitor, pings.c.kind, func.max(pings.c.at).label("at"))
        .where(pings.c.at >= since)
        .group_by(pings.c.monitor, pings.c.kind)
    )
    latest: dict[str, dict[str, Millis]] = {}
    for row in await conn.execute(query):
        latest.setdefault(row.monitor, {})[row.kind] = row.at
    return latest


def repaired(row: HeartbeatRow, latest: dict[str, Millis]) -> HeartbeatRow:
    """The row as the stored pings say it must be (pings are written before they are answered)."""
    done = [(at, kind) for kind, at in latest.items() if kind not in ("start", "log")]
    if done:
        at, kind = max(done)
        if row.last_ping_at is None or at > row.last_ping_at:
            row = replace(row, last_ping_at=at, last_kind=kind)
    started = latest.get("start")
    if started is not None and (row.started_at is None or started > row.started_at):
        row = replace(row, started_at=started, started_rid=None)
    finished = row.last_ping_at is not None and row.started_at is not None
    if finished and row.started_at < row.last_ping_at:  # type: ignore[operator]
        row = replace(row, started_at=None, started_rid=None)  # that run finished
    return row


async def list_pings(conn: AsyncConnection, monitor: str, limit: int = 50) -> list[Ping]:
    rows = await conn.execute(
        select(pings)
        .where(pings.c.monitor == monitor)
        .order_by(pings.c.at.desc(), pings.c.id.desc())
        .limit(limit)
    )
    return [
        Ping(
            r.id,
            r.monitor,
            r.at,
            r.kind,
            r.exit_code,
            r.method,
            r.remote,
            r.user_agent,
            r.body,
            r.rid,
            r.duration_ms,
        )
        for r in rows
    ]


async def count_pings(conn: AsyncConnection, monitors: Sequence[str]) -> dict[str, int]:
    """How many pings each monitor has stored (absent: none)."""
    if not monitors:
        return {}
    query = (
        select(pings.c.monitor, func.count())
        .where(pings.c.monitor.in_(list(monitors)))
        .group_by(pings.c.monitor)
    )
    return {row[0]: int(row[1]) for row in await conn.execute(query)}


async def prune_pings(conn: AsyncConnection, monitors: Sequence[str], before: Millis) -> int:
    if not monitors:
        return 0
    statement = delete(pings).where(
        pings.c.monitor == bindparam("m"), pings.c.at < bindparam("before")
    )
    outcome = await conn.execute(statement, [{"m": m, "before": before} for m in monitors])
    return max(int(outcome.rowcount or 0), 0)
