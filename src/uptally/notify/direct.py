"""Delivery from memory of events the writer could not store yet (database writes failing).

Routed and sent like outbox deliveries (same routes, transports, delivery ids, retries and
order per target), recorded in memory; the writer stores the outcome with the event, so the
outbox fan-out finds those deliveries done and sends nothing twice.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable

from uptally.clock import Clock
from uptally.config.schema import Config
from uptally.ingest.unstored import Unstored, UnstoredEvents
from uptally.notify.dispatcher import Dispatcher
from uptally.notify.fanout import Fanout, config_routes
from uptally.notify.routing import Route
from uptally.notify.targets import Unavailable
from uptally.store import deliveries as store
from uptally.store.database import Database
from uptally.store.outbox import StoredEvent
from uptally.waiting import wait_event

log = logging.getLogger(__name__)

ROUND_S = 0.5  # retries due are looked at this often


class DirectDelivery:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        config: Callable[[], Config],
        unstored: UnstoredEvents,
        fanout: Fanout,
        dispatcher: Dispatcher,
    ) -> None:
        self.db = db
        self.clock = clock
        self.config = config
        self.unstored = unstored
        self.fanout = fanout
        self.dispatcher = dispatcher
        self._stopping = False

    async def run(self) -> None:
        while not self._stopping:
            await wait_event(self.unstored.changed, ROUND_S)
            self.unstored.changed.clear()
            if self._stopping:
                return
            try:
                await self.round()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("delivering events from memory failed; retrying shortly")

    def stop(self) -> None:
        self._stopping = True
        self.unstored.changed.set()

    async def round(self) -> None:
        """Send what is due: per target in event order, targets side by side."""
        waiting = self.unstored.deliverable()
        if not waiting:
            return
        config = self.config()
        stored = {u.event.id: _stored_event(u) for u in waiting}
        routes = await self._routes(config, list(stored.values()))
        queues: dict[str, list[tuple[Unstored, store.NewDelivery]]] = {}
        for unstored in waiting:
            for item in self.fanout.deliveries_of(stored[unstored.event.id], routes, config):
                if item.state == store.PENDING and item.target not in unstored.finished:
                    queues.setdefault(item.target, []).append((unstored, item))
        await asyncio.gather(*(self._deliver(target, items) for target, items in queues.items()))

    async def _routes(self, config: Config, events: list[StoredEvent]) -> list[Route]:
        """Every route if the database can be read; else the config file's channels."""
        try:
            async with self.db.connect() as conn:
                return await self.fanout.routes(conn, config, events)
        except Exception as error:
            log.debug("routes from the database unavailable, config channels only: %s", error)
            return config_routes(config)

    async def _deliver(self, target: str, items: list[tuple[Unstored, store.NewDelivery]]) -> None:
        try:
            transport = await self.dispatcher.resolver.resolve(target)
        except (Unavailable, Exception) as unavailable:
            log.debug("%s cannot be delivered from memory: %s", target, unavailable)
            return  # the outbox handles it once the events are stored
        for unstored, item in items:
            if unstored.storing:
                return  # the writer has it: the outbox goes on from here
            if unstored.retry_at.get(target, 0) > self.clock.now_ms():
                return  # later events of this target wait: the order holds
            delivery = unstored.deliveries.setdefault(target, item.id)
            tried = unstored.attempts.setdefault(target, [])
            pending = store.Pending(
                delivery,
                unstored.event.id,
                0,
                target,
                unstored.event.kind.value,
                len(tried),
                unstored.created_at,
                unstored.event.at,
                unstored.event.subject,
                _data(unstored),
            )
            unstored.begin()
            try:
                attempt, retry_in = await self.dispatcher.attempt(transport, pending)
            finally:
                unstored.end()
            tried.append(attempt)
            if retry_in is not None:
                unstored.retry_at[target] = self.clock.now_ms() + retry_in
                return
            unstored.finished[target] = attempt


def _data(unstored: Unstored) -> dict[str, object]:
    """The event's data as the outbox would give it back (JSON, the same in both paths)."""
    data: dict[str, object] = json.loads(json.dumps(dict(unstored.event.data), default=str))
    return data


def _stored_event(unstored: Unstored) -> StoredEvent:
    event = unstored.event
    return StoredEvent(
        0, event.id, event.kind.value, event.subject, event.at, _data(unstored), unstored.created_at
    )
