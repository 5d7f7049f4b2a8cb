"""Pausing and resuming monitors: the record, its audit entry, and the running parts told.

The simplest design that holds live and across restarts: a pause is a row in
`monitor_pauses` (end null while paused), written with its audit entry in one transaction;
the set of paused monitors is kept here in memory (loaded at start) and handed to each part
that checks or judges:

- the embedded probe and the agents' assignments leave paused monitors out (`set_paused`), so
  no check runs while paused; the heartbeat watchdog does not judge their silence, and pings
  are recorded but judge nothing;
- the evaluator treats a paused monitor's time like uptally's own monitoring gaps, for that
  monitor alone: silence while paused is not staleness, results dated inside a pause are
  rejected, an outage open at the pause stays open, and the first result after the resume
  decides the state;
- the read models (status page, SLA ledger) read the paused spans from the table: a paused
  span is *not monitored* for the monitor, neither up nor down (see uptally.sla.ledger).
"""

from __future__ import annotations

import asyncio

from sqlalchemy.ext.asyncio import AsyncConnection

from uptally import audit
from uptally.clock import Clock, Millis
from uptally.evaluator import Evaluator
from uptally.fleet import Fleet
from uptally.heartbeats import Heartbeats
from uptally.probe.runner import ProbeRunner
from uptally.store import monitor_pauses as pause_store
from uptally.store.database import Database
from uptally.store.monitor_pauses import MonitorPause


class PauseConflict(Exception):
    """Pausing a paused monitor, or resuming a running one."""


class Pausing:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        evaluator: Evaluator,
        probe: ProbeRunner,
        fleet: Fleet,
        heartbeats: Heartbeats,
    ) -> None:
        self._db = db
        self._clock = clock
        self._evaluator = evaluator
        self._probe = probe
        self._fleet = fleet
        self._heartbeats = heartbeats
        self.paused: dict[str, MonitorPause] = {}  # monitor -> its open pause
        self._resumed: dict[str, Millis] = {}  # monitor -> when its last pause ended
        self._lock = asyncio.Lock()  # one change at a time: check and write agree

    async def load(self, conn: AsyncConnection, horizon: Millis) -> None:
        """At start (after the evaluator's rules, before its restore): every pause."""
        for item in await pause_store.list_pauses(conn):
            if item.end is None:
                self.paused[item.monitor] = item
            else:
                self._resumed[item.monitor] = max(self._resumed.get(item.monitor, 0), item.end)
            if item.end is None or item.end > horizon:
                self._evaluator.pause_monitor(item.monitor, item.start, item.end)
        self._apply()

    def is_paused(self, monitor: str) -> bool:
        return monitor in self.paused

    async def pause(self, monitor: str, actor: str) -> MonitorPause:
        """Pause a monitor now (PauseConflict if it is paused)."""
        async with self._lock:
            now = self._clock.now_ms()
            async with self._db.begin() as conn:
                if await pause_store.open_pause(conn, monitor) is not None:
                    raise PauseConflict(f"monitor {monitor!r} is already paused")
                record = await pause_store.pause(conn, monitor, now, actor)
                await audit.append(
                    conn, actor, "monitor.paused", f"monitor:{monitor}", {"start": now}, at=now
                )
            self.paused[monitor] = record
            self._evaluator.pause_monitor(monitor, now)
            self._apply()
            return record

    async def resume(self, monitor: str, actor: str) -> MonitorPause:
        """Resume a paused monitor now (PauseConflict if it is not paused)."""
        async with self._lock:
            now = self._clock.now_ms()
            async with self._db.begin() as conn:
                record = await pause_store.resume(conn, monitor, now, actor)
                if record is None:
                    raise PauseConflict(f"monitor {monitor!r} is not paused")
                assert record.end is not None
                details = {"start": record.start, "end": record.end}
                await audit.append(
                    conn, actor, "monitor.resumed", f"monitor:{monitor}", details, at=now
                )
            self.paused.pop(monitor, None)
            self._resumed[monitor] = record.end
            self._evaluator.resume_monitor(monitor, record.end)
            self._apply()
            return record

    def _apply(self) -> None:
        paused = frozenset(self.paused)
        self._probe.set_paused(paused)
        self._fleet.set_paused(paused)
        self._heartbeats.set_paused(paused, self._resumed)
