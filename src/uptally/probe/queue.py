"""The agent's durable queue: results wait in SQLite until the hub has them, bounded and ordered.

Results are written here before anything is sent, so a hub outage or an agent restart loses
nothing. The queue keeps at most `max_results` results no older than `max_age`; beyond that the
oldest are dropped, but never silently: each drop becomes a per-monitor summary (count,
failures, first and last time) sent to the hub with the next batch, and counted.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from uptally.clock import Millis
from uptally.results import Result

_SCHEMA = """
CREATE TABLE IF NOT EXISTS queue (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    monitor TEXT NOT NULL,
    at INTEGER NOT NULL,
    ok INTEGER NOT NULL,
    latency_ms REAL,
    error TEXT,
    message TEXT NOT NULL,
    degraded INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS queue_at ON queue (at);
CREATE TABLE IF NOT EXISTS dropped (
    monitor TEXT PRIMARY KEY,
    count INTEGER NOT NULL,
    failures INTEGER NOT NULL,
    first_at INTEGER NOT NULL,
    last_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class DroppedSummary:
    monitor: str
    count: int
    failures: int
    first_at: Millis
    last_at: Millis


class ResultQueue:
    """A thread-safe SQLite queue (its methods block: call them through asyncio.to_thread)."""

    def __init__(
        self,
        path: Path,
        location: str,
        max_results: int = 1_000_000,
        max_age_ms: int = 7 * 86_400_000,
    ) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.location = location
        self.max_results = max_results
        self.max_age_ms = max_age_ms
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        self._count = int(self._db.execute("SELECT count(*) FROM queue").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def put(self, results: Iterable[Result], now: Millis) -> None:
        rows = [
            (r.id, r.monitor, r.at, int(r.ok), r.latency_ms, r.error, r.message, int(r.degraded))
            for r in results
        ]
        if not rows:
            return
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                before = self._db.total_changes
                self._db.executemany(
                    "INSERT OR IGNORE INTO queue (id, monitor, at, ok, latency_ms, error, message,"
                    " degraded) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    rows,
                )
                self._count += self._db.total_changes - before
                self._enforce_bounds(now)
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def peek(self, limit: int) -> list[Result]:
        """The oldest results, in the order they were queued."""
        with self._lock:
            rows = self._db.execute(
                "SELECT id, monitor, at, ok, latency_ms, error, message, degraded FROM queue"
                " ORDER BY seq LIMIT ?",
                (limit,),
            ).fetchall()
        return [
            Result(id_, monitor, self.location, at, bool(ok), latency, error, message, bool(deg))
            for id_, monitor, at, ok, latency, error, message, deg in rows
        ]

    def ack(self, ids: Iterable[str]) -> None:
        """The hub has these (or refused them for good): forget them."""
        with self._lock:
            before = self._db.total_changes
            self._db.executemany("DELETE FROM queue WHERE id = ?", [(i,) for i in ids])
            self._count -= self._db.total_changes - before

    def dropped(self) -> list[DroppedSummary]:
        with self._lock:
            rows = self._db.execute(
                "SELECT monitor, count, failures, first_at, last_at FROM dropped ORDER BY monitor"
            ).fetchall()
        return [DroppedSummary(*row) for row in rows]

    def ack_dropped(self, summaries: Iterable[DroppedSummary]) -> None:
        """The hub has these summaries: subtract them (more may have been added meanwhile)."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            for s in summaries:
                self._db.execute(
                    "UPDATE dropped SET count = count - ?, failures = failures - ?"
                    " WHERE monitor = ?",
                    (s.count, s.failures, s.monitor),
                )
            self._db.execute("DELETE FROM dropped WHERE count <= 0")
            self._db.execute("COMMIT")

    def depth(self) -> int:
        return self._count

    def dropped_total(self) -> int:
        with self._lock:
            row = self._db.execute("SELECT value FROM counters WHERE name = 'dropped'").fetchone()
        return int(row[0]) if row else 0

    def _enforce_bounds(self, now: Millis) -> None:
        """Summarise, then drop, the oldest results past the size and age limits."""
        excess = self._count - self.max_results
        cutoff = now - self.max_age_ms
        condition = "at < ?"
        params: tuple[int, ...] = (cutoff,)
        if excess > 0:
            boundary = self._db.execute(
                "SELECT seq FROM queue ORDER BY seq LIMIT 1 OFFSET ?", (excess - 1,)
            ).fetchone()
            condition = "(at < ? OR seq <= ?)"
            params = (cutoff, boundary[0])
        summary = self._db.execute(
            f"SELECT monitor, count(*), sum(1 - ok), min(at), max(at) FROM queue WHERE {condition}"
            " GROUP BY monitor",
            params,
        ).fetchall()
        if not summary:
            return
        for monitor, count, failures, first_at, last_at in summary:
            self._db.execute(
                "INSERT INTO dropped (monitor, count, failures, first_at, last_at)"
                " VALUES (?, ?, ?, ?, ?) ON CONFLICT (monitor) DO UPDATE SET"
                " count = count + excluded.count, failures = failures + excluded.failures,"
                " first_at = min(first_at, excluded.first_at),"
                " last_at = max(last_at, excluded.last_at)",
                (monitor, count, failures, first_at, last_at),
            )
        total = sum(row[1] for row in summary)
        self._db.execute(
            "INSERT INTO counters (name, value) VALUES ('dropped', ?) ON CONFLICT (name)"
            " DO UPDATE SET value = value + excluded.value",
            (total,),
        )
        before = self._db.total_changes
        self._db.execute(f"DELETE FROM queue WHERE {condition}", params)
        self._count -= self._db.total_changes - before
