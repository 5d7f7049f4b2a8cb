"""Hourly rollups kept in memory and written in bulk, with an exact rebuild after a crash.

Every result adds to its (monitor, location, hour) rollup in memory; rows are written every
flush interval and on shutdown instead of on every batch. A clean shutdown leaves a marker;
without it (a crash) the recent hours are recomputed from the raw results, which are the truth.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from uptally.clock import Millis
from uptally.results import Result
from uptally.store import rollups as rollup_store
from uptally.store.database import Database
from uptally.store.rollups import HOUR_MS, Rollup
from uptally.store.tables import results, rollups

Key = tuple[str, str, Millis]


def hour_of(at: Millis) -> Millis:
    return at - at % HOUR_MS


class RollupBook:
    def __init__(self) -> None:
        self._rows: dict[Key, Rollup] = {}
        self._dirty: set[Key] = set()

    def __len__(self) -> int:
        return len(self._rows)

    def missing(self, batch: Iterable[Result]) -> list[Key]:
        """Keys this batch adds to that are not in memory yet (to be read from the database)."""
        return list(
            {
                key
                for r in batch
                if (key := (r.monitor, r.location, hour_of(r.at))) not in self._rows
            }
        )

    def load(self, keys: Iterable[Key], stored: Iterable[Rollup]) -> None:
        found = {(r.monitor, r.location, r.hour): r for r in stored}
        for key in keys:
            self._rows[key] = found.get(key) or Rollup(*key)

    def add(self, batch: Iterable[Result]) -> None:
        for result in batch:
            key = (result.monitor, result.location, hour_of(result.at))
            self._rows[key].add(result.ok, result.latency_ms)
            self._dirty.add(key)

    def take_dirty(self) -> list[Rollup]:
        """Rollups changed since the last flush; they stay dirty until `flushed` is called."""
        return [self._rows[key] for key in self._dirty]

    def unwritten(self, monitor: str) -> list[Rollup]:
        """Copies of the monitor's rollups changed since the last flush (newer than stored)."""
        return [
            replace(self._rows[key], histogram=dict(self._rows[key].histogram))
            for key in self._dirty
            if key[0] == monitor
        ]

    def flushed(self, written: Iterable[Rollup], now: Millis) -> None:
        for rollup in written:
            self._dirty.discard((rollup.monitor, rollup.location, rollup.hour))
        # Rows that are written and clean leave memory; the next result reads its row back.
        # That costs one indexed read per batch but keeps an idle monitor small.
        for key in [k for k in self._rows if k not in self._dirty]:
            del self._rows[key]


async def rebuild_recent(db: Database, conn: AsyncConnection, since: Millis) -> int:
    """Recompute rollups of every hour from `since` on from the raw results."""
    start = hour_of(since)
    book: dict[Key, Rollup] = {}
    query = select(
        results.c.monitor, results.c.location, results.c.at, results.c.ok, results.c.latency_ms
    ).where(results.c.at >= start)
    for row in await conn.execute(query):
        key = (row.monitor, row.location, hour_of(row.at))
        rollup = book.get(key)
        if rollup is None:
            rollup = book[key] = Rollup(*key)
        rollup.add(bool(row.ok), row.latency_ms)
    await conn.execute(delete(rollups).where(rollups.c.hour >= start))
    await rollup_store.save_rollups(db, conn, book.values())
    return len(book)
