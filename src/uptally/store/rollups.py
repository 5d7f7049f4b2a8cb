"""Hourly rollups per monitor and location: count, failures, latency sum/max and histogram."""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from sqlalchemy import Row, and_, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from uptally import histogram
from uptally.clock import Millis
from uptally.store.database import Database, upsert
from uptally.store.tables import results, rollups

HOUR_MS = 3_600_000


@dataclass(slots=True)
class Rollup:
    monitor: str
    location: str
    hour: Millis
    count: int = 0
    failures: int = 0
    latency_sum: float = 0.0
    latency_max: float = 0.0
    histogram: dict[int, int] = field(default_factory=dict)

    def add(self, ok: bool, latency_ms: float | None) -> None:
        self.count += 1
        if not ok:
            self.failures += 1
        if latency_ms is not None:
            self.latency_sum += latency_ms
            self.latency_max = max(self.latency_max, latency_ms)
            histogram.add(self.histogram, latency_ms)


async def load_rollups(
    conn: AsyncConnection, keys: Iterable[tuple[str, str, Millis]]
) -> list[Rollup]:
    """The stored rollups of exactly these (monitor, location, hour) keys (primary-key lookups)."""
    wanted = list(set(keys))
    found: list[Rollup] = []
    key = tuple_(rollups.c.monitor, rollups.c.location, rollups.c.hour)
    for start in range(0, len(wanted), 300):
        query = select(rollups).where(key.in_(wanted[start : start + 300]))
        found.extend(_rollup(row) for row in await conn.execute(query))
    return found


async def save_rollups(db: Database, conn: AsyncConnection, items: Iterable[Rollup]) -> None:
    rows = [
        {
            "monitor": r.monitor,
            "location": r.location,
            "hour": r.hour,
            "count": r.count,
            "failures": r.failures,
            "latency_sum": r.latency_sum,
            "latency_max": r.latency_max,
            "histogram": json.dumps(histogram.encode(r.histogram), separators=(",", ":")),
        }
        for r in items
    ]
    if rows:
        columns = ["count", "failures", "latency_sum", "latency_max", "histogram"]
        await conn.execute(upsert(db, rollups, ["monitor", "location", "hour"], columns), rows)


async def list_rollups(
    conn: AsyncConnection, monitors: Iterable[str], since: Millis, until: Millis
) -> list[Rollup]:
    query = select(rollups).where(
        rollups.c.monitor.in_(list(monitors)), rollups.c.hour >= since, rollups.c.hour < until
    )
    return [_rollup(row) for row in await conn.execute(query.order_by(rollups.c.hour))]


class HourTotals(NamedTuple):
    monitor: str
    hour: Millis
    checks: int
    latency_sum: float


async def hourly_totals(
    conn: AsyncConnection, monitors: Iterable[str], since: Millis, until: Millis
) -> list[HourTotals]:
    """Counts and latency sums per monitor, location and hour, without the histograms (what
    the status page's charts need, at a fraction of the decoding)."""
    wanted = list(monitors)
    totals: list[HourTotals] = []
    columns = (rollups.c.monitor, rollups.c.hour, rollups.c["count"], rollups.c.latency_sum)
    for start in range(0, len(wanted), 500):  # each piece's rows are a short turn of the loop
        query = select(*columns).where(
            rollups.c.monitor.in_(wanted[start : start + 500]),
            rollups.c.hour >= since,
            rollups.c.hour < until,
        )
        totals.extend(HourTotals(*row) for row in await conn.execute(query))
    return totals


async def first_results(conn: AsyncConnection, monitors: Iterable[str]) -> dict[str, Millis]:
    """When each monitor's first result was taken (absent: none yet).

    The first hourly rollup says which hour; the raw results of that hour say when in it. Once
    they have been purged (`retention.results`), the start of that hour stands in.
    """
    wanted = sorted(set(monitors))
    found: dict[str, Millis] = {}
    for start in range(0, len(wanted), 500):
        first = (
            select(rollups.c.monitor, func.min(rollups.c.hour).label("hour"))
            .where(rollups.c.monitor.in_(wanted[start : start + 500]))
            .group_by(rollups.c.monitor)
            .subquery()
        )
        within = and_(
            results.c.monitor == first.c.monitor,
            results.c.at >= first.c.hour,
            results.c.at < first.c.hour + HOUR_MS,
        )
        query = (
            select(first.c.monitor, first.c.hour, func.min(results.c.at))
            .select_from(first.outerjoin(results, within))
            .group_by(first.c.monitor, first.c.hour)
        )
        for monitor, hour, at in await conn.execute(query):
            found[monitor] = int(at if at is not None else hour)
    return found


def _rollup(row: Row[Any]) -> Rollup:
    r = row._mapping  # `count` would be the tuple method on the row itself
    return Rollup(
        r["monitor"],
        r["location"],
        r["hour"],
        r["count"],
        r["failures"],
        r["latency_sum"],
        r["latency_max"],
        histogram.decode(json.loads(r["histogram"])),
    )
