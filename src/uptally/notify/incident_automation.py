"""Automatic incidents: a consumer of monitor.down / monitor.up in the outbox.

Its own cursor (`incidents`) advances in the same transaction as the incidents it opens or
updates and their events, so each outage event is acted on exactly once, on one instance.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy.ext.asyncio import AsyncConnection

from uptally.audit import SYSTEM
from uptally.clock import Clock, Millis
from uptally.config.schema import Config
from uptally.ids import new_id
from uptally.incidents.automation import plan, signal_of
from uptally.notify.consumer import Consumer
from uptally.notify.desk import Desk
from uptally.store import incidents as store
from uptally.store.database import Database
from uptally.store.outbox import StoredEvent

_KINDS = frozenset({"monitor.down", "monitor.up"})


class IncidentAutomation(Consumer):
    cursor_name = "incidents"
    batch = 200

    def __init__(
        self, db: Database, clock: Clock, config: Callable[[], Config], desk: Desk
    ) -> None:
        super().__init__(db, clock)
        self.config = config
        self.desk = desk
        self._changed = False

    async def handle(self, conn: AsyncConnection, events: list[StoredEvent], now: Millis) -> None:
        config = self.config()
        automation = config.incidents.automation
        if automation.default == "off" and not any(
            policy != "off" for policy in automation.components.values()
        ):
            return  # off everywhere: the cursor moves on, nothing is opened later for these
        relevant = [e for e in events if e.kind in _KINDS]
        if not relevant:
            return
        open_now = {i.id: i for i in await store.open_incidents(conn)}
        locked: set[str] = set()
        for event in relevant:
            signal = signal_of(event.kind, event.data, event.at)
            if signal is None:
                continue
            for planned in plan(signal, list(open_now.values()), config, now, lambda: new_id(now)):
                incident = planned.change.incident
                if not planned.new and incident.id not in locked:
                    await store.lock(conn, incident.id)
                    locked.add(incident.id)
                await self.desk.record(conn, planned.change, SYSTEM, now, new=planned.new)
                self._changed = self._changed or bool(planned.change.events)
                if incident.status.open:
                    open_now[incident.id] = incident
                else:
                    open_now.pop(incident.id, None)

    async def committed(self) -> None:
        if self._changed:
            self._changed = False
            self.desk.on_events()
