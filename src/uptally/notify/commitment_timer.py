"""The commitment timer: raises commitment.due for commitments due soon or overdue, once each."""

from __future__ import annotations

from collections.abc import Callable

from uptally.clock import Clock
from uptally.config.schema import Config
from uptally.incidents.commitments import reminder_event, review
from uptally.metrics import Metrics
from uptally.notify.desk import rules_for
from uptally.store import commitments as commitment_store
from uptally.store import incidents as store
from uptally.store import outbox as outbox_store
from uptally.store import outbox_cursors
from uptally.store.database import Database

LOCK = "commitments"  # a cursor row used only as this timer's lock between instances


class CommitmentTimer:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        metrics: Metrics,
        config: Callable[[], Config],
        on_events: Callable[[], None] = lambda: None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.metrics = metrics
        self.config = config
        self.on_events = on_events

    async def step(self) -> int:
        """Review unfulfilled commitments now; returns how many commitment.due were raised."""
        now = self.clock.now_ms()
        config = self.config()
        rules = rules_for(config)
        async with self.db.connect() as conn:
            if not await commitment_store.load_commitments(conn, unfulfilled=True, limit=1):
                return 0
        async with self.db.begin() as conn:
            await outbox_cursors.take_cursor(self.db, conn, LOCK, now)
            pending = await commitment_store.load_commitments(conn, unfulfilled=True, limit=10_000)
            changed, reminders = review(pending, now, rules)
            if not reminders:
                return 0
            events = []
            for reminder in reminders:
                found = await store.load_incident(conn, reminder.commitment.incident)
                title = found.title if found else reminder.commitment.incident
                components = sorted(found.components) if found else []
                events.append(reminder_event(reminder, title, components, now))
            await commitment_store.save_commitments(conn, changed)
            await outbox_store.append_events(conn, events, now)
        for reminder in reminders:
            self.metrics.commitment_reminders.labels(
                reminder.commitment.kind.value, reminder.state
            ).inc()
        self.on_events()
        return len(reminders)
