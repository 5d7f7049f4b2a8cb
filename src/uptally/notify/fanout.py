"""Fan-out: outbox events → one delivery per matching channel and subscriber.

Runs under the `dispatch` cursor (one instance at a time, in order), so it also counts every
event (`uptally_events_total{kind}`). Events marked `suppressed` (maintenance) are recorded as
suppressed deliveries and never sent.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from fnmatch import fnmatchcase

from sqlalchemy.ext.asyncio import AsyncConnection

from uptally.clock import Clock, Millis
from uptally.config.schema import Config
from uptally.ids import new_id
from uptally.metrics import Metrics
from uptally.notify.consumer import Consumer
from uptally.notify.routing import Route, scope_of, targets_for
from uptally.notify.targets import CHANNEL, label
from uptally.store import channels as channel_store
from uptally.store import deliveries as store
from uptally.store import subscribers as subscriber_store
from uptally.store.database import Database
from uptally.store.outbox import StoredEvent


class Fanout(Consumer):
    cursor_name = "dispatch"

    def __init__(
        self, db: Database, clock: Clock, metrics: Metrics, config: Callable[[], Config]
    ) -> None:
        super().__init__(db, clock)
        self.metrics = metrics
        self.config = config
        self.on_new: Callable[[set[str]], None] = lambda _targets: None  # queues with new work
        self._suppressed: Counter[str] = Counter()
        self._kinds: Counter[str] = Counter()
        self._new: set[str] = set()

    async def handle(self, conn: AsyncConnection, events: list[StoredEvent], now: Millis) -> None:
        config = self.config()
        routes = await self.routes(conn, config, events)
        items: list[store.NewDelivery] = []
        for event in events:
            items.extend(self.deliveries_of(event, routes, config))
        await store.add_deliveries(self.db, conn, items, now)
        self._suppressed = Counter(label(d.target) for d in items if d.state == store.SUPPRESSED)
        self._new = {d.target for d in items if d.state == store.PENDING}
        self._kinds = Counter(event.kind for event in events)

    async def committed(self) -> None:
        # Every event, of every writer, passes here once, after both it and this batch have
        # committed: no count for a rolled-back or retried write, none twice across instances.
        for kind, count in self._kinds.items():
            self.metrics.events.labels(kind).inc(count)
        self._kinds.clear()
        for name, count in self._suppressed.items():
            self.metrics.deliveries.labels(name, "suppressed").inc(count)
        self._suppressed.clear()
        if self._new:
            new, self._new = self._new, set()
            self.on_new(new)

    async def routes(
        self, conn: AsyncConnection, config: Config, events: list[StoredEvent]
    ) -> list[Route]:
        routes = config_routes(config)
        configured = {c.id for c in config.notifications.channels}
        routes.extend(
            Route(
                CHANNEL + stored.id,
                tuple(stored.events),
                frozenset(stored.components),
                frozenset(stored.monitors),
            )
            for stored in await channel_store.load_channels(conn)
            if stored.id not in configured  # the config file wins over the API
        )
        settings = config.notifications.subscribers
        wanted = tuple(settings.events)
        if settings.enabled and any(
            fnmatchcase(e.kind, pattern) for e in events for pattern in wanted
        ):
            routes.extend(
                Route(s.target, wanted, frozenset(s.components), site_wide_too=True)
                for s in await subscriber_store.active(conn)
            )
        return routes

    def deliveries_of(
        self, event: StoredEvent, routes: list[Route], config: Config
    ) -> list[store.NewDelivery]:
        scope = scope_of(event.data, config)
        state = store.SUPPRESSED if event.data.get("suppressed") else store.PENDING
        return [
            store.NewDelivery(
                new_id(event.created_at),
                event.id,
                event.seq,
                target,
                event.kind,
                state,
                event.created_at,
            )
            for target in targets_for(event.kind, scope, routes)
        ]


def config_routes(config: Config) -> list[Route]:
    """Routes of the channels in the config file."""
    return [
        Route(CHANNEL + c.id, tuple(c.events), frozenset(c.components), frozenset(c.monitors))
        for c in config.notifications.channels
    ]
