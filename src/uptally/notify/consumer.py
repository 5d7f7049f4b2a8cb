"""A consumer of the outbox: batches of events in order, exactly once, under its own cursor.

The cursor row is locked first in each transaction, so one instance consumes at a time and the
effects of a batch commit together with the cursor's advance.
"""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from uptally.clock import Clock, Millis
from uptally.store import outbox_cursors as store
from uptally.store.database import Database
from uptally.store.outbox import StoredEvent

GAP_TTL_MS = 5 * 60_000  # a missing outbox seq is looked for this long (PostgreSQL commits)


class Consumer:
    cursor_name = ""
    batch = 500

    def __init__(self, db: Database, clock: Clock) -> None:
        self.db = db
        self.clock = clock
        self._seen: tuple[int, bool] | None = None  # the cursor after the last step, any gaps

    async def step(self) -> int:
        """Consume the next batch of events; returns how many there were."""
        if self._seen is not None and not self._seen[1]:
            async with self.db.connect() as conn:
                if await store.latest_seq(conn) <= self._seen[0]:
                    return 0  # nothing new: no need to take the lock
        now = self.clock.now_ms()
        async with self.db.begin() as conn:
            cursor = await store.take_cursor(self.db, conn, self.cursor_name, now)
            events = await store.events_after(conn, cursor, self.batch)
            if events:
                await self.handle(conn, events, now)
            moved = store.advanced(cursor, (e.seq for e in events), now, GAP_TTL_MS)
            if moved != cursor:
                await store.save_cursor(conn, moved, now)
        self._seen = (moved.seq, bool(moved.gaps))
        await self.committed()
        return len(events)

    async def handle(self, conn: AsyncConnection, events: list[StoredEvent], now: Millis) -> None:
        raise NotImplementedError

    async def committed(self) -> None:
        """After the batch committed (e.g. count what was done)."""
