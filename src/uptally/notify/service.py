"""The notifier of one process: desk, automation, commitment timer and dispatcher in one loop.

The loop wakes when events are committed here and polls for those of other instances.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from uptally.clock import Clock
from uptally.config.schema import Config
from uptally.ingest.unstored import UnstoredEvents
from uptally.ingest.write_health import WriteHealth
from uptally.metrics import Metrics
from uptally.notify.commitment_timer import CommitmentTimer
from uptally.notify.desk import Desk
from uptally.notify.direct import DirectDelivery
from uptally.notify.dispatcher import Dispatcher
from uptally.notify.fanout import Fanout
from uptally.notify.incident_automation import IncidentAutomation
from uptally.secrets import Keyring
from uptally.store.database import Database
from uptally.waiting import wait_event

log = logging.getLogger(__name__)

POLL_S = 0.5  # events committed by other instances are noticed this quickly


class Notifier:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        metrics: Metrics,
        config: Callable[[], Config],
        keyring: Callable[[], Keyring | None],
        *,
        unstored: UnstoredEvents | None = None,
        health: WriteHealth | None = None,
    ) -> None:
        self.config = config
        self.health = health
        self.desk = Desk(db, clock, config, self.wake)
        self.automation = IncidentAutomation(db, clock, config, self.desk)
        self.fanout = Fanout(db, clock, metrics, config)
        self.dispatcher = Dispatcher(db, clock, metrics, config, keyring)
        self.dispatcher.on_idle = self.wake
        self.fanout.on_new = self.dispatcher.nudge
        self.timer = CommitmentTimer(db, clock, metrics, config, self.wake)
        # Events the writer holds in memory (writes failing) are delivered from there.
        self.direct = DirectDelivery(
            db, clock, config, unstored or UnstoredEvents(), self.fanout, self.dispatcher
        )
        self._wake = asyncio.Event()
        self._stopping = False
        self._finished = asyncio.Event()  # run() has returned (or never started)
        self._finished.set()
        self._last_review = 0.0

    def wake(self) -> None:
        """New events were committed (or a queue finished): look now rather than at the poll."""
        self._wake.set()

    async def run(self) -> None:
        self._finished.clear()
        self.dispatcher.start()
        try:
            while not self._stopping:
                self._wake.clear()
                busy = False
                try:
                    busy = await self.run_once()
                except asyncio.CancelledError:
                    raise
                except Exception as error:
                    if self.health is not None and self.health.failing:
                        # said once by the writer; events are delivered from memory meanwhile
                        log.debug("notifications: a round failed while writes fail: %s", error)
                    else:
                        log.exception("notifications: a round failed; retrying shortly")
                    await wait_event(self._wake, 1.0)
                if not busy and not self._stopping:
                    await wait_event(self._wake, POLL_S)
        finally:
            self._finished.set()

    async def run_once(self) -> bool:
        """One round: automation, fan-out, leases, reminders; True if more is waiting."""
        automated = await self.automation.step()
        fanned = await self.fanout.step()
        await self.dispatcher.schedule()
        check_every = self.config().incidents.commitments.check_every / 1000
        if time.monotonic() - self._last_review >= check_every:
            self._last_review = time.monotonic()
            await self.timer.step()
        return automated >= self.automation.batch or fanned >= self.fanout.batch

    async def stop(self) -> None:
        """Finish the round in progress (never cancelled inside a transaction), then stop
        delivering: sends in flight finish and are recorded, leases are given back."""
        self._stopping = True
        self._wake.set()
        self.direct.stop()
        if not await wait_event(self._finished, 30):
            log.warning("notifications: the last round did not finish in 30 s")
        await self.dispatcher.stop()

    async def link_key(self) -> bytes:
        """The key that signs subscriber links and forms."""
        return await self.dispatcher.resolver.link_key()
