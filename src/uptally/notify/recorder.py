"""Records delivery attempts in batches: one transaction for whatever piled up (group commit)."""

from __future__ import annotations

import asyncio
import logging

from uptally.store import deliveries as store
from uptally.store.database import Database
from uptally.waiting import wait_event

log = logging.getLogger(__name__)


class Recorder:
    def __init__(self, db: Database) -> None:
        self.db = db
        self._batch: list[store.Attempt] = []
        self._waiters: list[asyncio.Future[None]] = []
        self._wake = asyncio.Event()
        self._closing = False

    def add(self, attempt: store.Attempt) -> asyncio.Future[None]:
        """Queue an attempt; the future resolves once it is committed."""
        done = asyncio.get_running_loop().create_future()
        self._batch.append(attempt)
        self._waiters.append(done)
        self._wake.set()
        return done

    async def run(self) -> None:
        delay = 0.05
        while True:
            if not self._batch:
                if self._closing:
                    return
                self._wake.clear()
                await wait_event(self._wake, 1.0)
                continue
            batch, waiters = self._batch, self._waiters
            self._batch, self._waiters = [], []
            try:
                async with self.db.begin() as conn:
                    await store.record_attempts(conn, batch)
            except Exception as error:
                log.warning(
                    "recording %d delivery attempts failed, retrying: %s", len(batch), error
                )
                self._batch, self._waiters = batch + self._batch, waiters + self._waiters
                if self._closing and delay > 2:
                    for waiter in self._waiters:
                        if not waiter.done():
                            waiter.set_exception(error)
                    return
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)
                continue
            delay = 0.05
            for waiter in waiters:
                if not waiter.done():
                    waiter.set_result(None)

    def close(self) -> None:
        """Write what is queued, then let run() return."""
        self._closing = True
        self._wake.set()
