"""Events the writer could not store yet: delivered from memory, marked delivered once stored.

Each event keeps its id and each (event, target) its delivery id, so a delivery made from memory
is written with the event (state delivered) and the outbox never sends it again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from dataclasses import dataclass, field

from uptally.clock import Millis
from uptally.events import Event
from uptally.store.deliveries import Attempt

MAX_EVENTS = 10_000  # beyond this, newer events wait for the outbox (they are still stored)


@dataclass(slots=True)
class Unstored:
    event: Event
    created_at: Millis
    deliveries: dict[str, str] = field(default_factory=dict)  # target → delivery id
    attempts: dict[str, list[Attempt]] = field(default_factory=dict)  # target → attempts made
    finished: dict[str, Attempt] = field(default_factory=dict)  # delivered or given up
    retry_at: dict[str, Millis] = field(default_factory=dict)  # after a transient failure
    storing: bool = False  # the writer is storing it: no new send starts
    sending: int = 0
    quiet: asyncio.Event = field(default_factory=asyncio.Event)  # no send in flight

    def __post_init__(self) -> None:
        self.quiet.set()

    def begin(self) -> None:
        self.sending += 1
        self.quiet.clear()

    def end(self) -> None:
        self.sending -= 1
        if self.sending == 0:
            self.quiet.set()


class UnstoredEvents:
    def __init__(self) -> None:
        self.events: dict[str, Unstored] = {}  # in the order they happened
        self.changed = asyncio.Event()
        self.skipped = 0  # events left to the outbox because MAX_EVENTS were held

    def add(self, events: Iterable[Event], now: Millis) -> None:
        for event in events:
            if len(self.events) >= MAX_EVENTS:
                self.skipped += 1
                continue
            self.events[event.id] = Unstored(event, now)
        self.changed.set()

    def deliverable(self) -> list[Unstored]:
        return [u for u in self.events.values() if not u.storing]

    async def claim(self, ids: Iterable[str]) -> list[Unstored]:
        """The writer is about to store these: stop sending them, wait for sends in flight."""
        claimed = [u for i in ids if (u := self.events.get(i)) is not None]
        for unstored in claimed:
            unstored.storing = True
        for unstored in claimed:
            await unstored.quiet.wait()
        return claimed

    def stored(self, claimed: Iterable[Unstored]) -> None:
        for unstored in claimed:
            self.events.pop(unstored.event.id, None)

    def released(self, claimed: Iterable[Unstored]) -> None:
        """Storing failed: deliver them from memory again."""
        for unstored in claimed:
            unstored.storing = False
        self.changed.set()
