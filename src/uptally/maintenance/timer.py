"""The maintenance timer: starts and completes windows on time, schedules recurring ones, and
keeps the suppressor's view of windows current.

Windows take effect by time (suppression does not wait for the timer); the timer records the
transitions (state, update, audit entry, event) the moment they are due, and when a window ends
it has the writer re-alert covered monitors that are still down.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from uptally import audit
from uptally.clock import Clock, Millis
from uptally.config.schema import Config
from uptally.evaluator import MonitorState, Outage
from uptally.ingest import Ingest, Work
from uptally.maintenance.series import Recurring
from uptally.maintenance.service import Maintenance, WindowError
from uptally.maintenance.suppress import Suppressor
from uptally.maintenance.sync import sync_config
from uptally.maintenance.windows import WindowStatus, WindowView, active_windows, covering
from uptally.metrics import Metrics
from uptally.store import maintenance as store
from uptally.store.database import Database
from uptally.waiting import wait_event

log = logging.getLogger(__name__)

REFRESH_S = 30.0  # windows changed by another instance are seen this soon
MIN_WAIT_S = 0.01  # never spin, even if a transition keeps failing
SERIES_EVERY_MS = 3_600_000  # recurring windows are scheduled ahead this often
RECENT_MS = 2 * 86_400_000  # ended windows kept in view (to re-alert after a restart)


def component_monitors(config: Config) -> dict[str, list[str]]:
    return {c.id: list(c.monitors) for c in config.components}


class MaintenanceTimer:
    def __init__(
        self,
        db: Database,
        config: Config,
        clock: Clock,
        ingest: Ingest,
        open_outage: Callable[[str], Outage | None],
        metrics: Metrics,
    ) -> None:
        self.db = db
        self.config = config
        self.clock = clock
        self.ingest = ingest
        self.metrics = metrics
        self.service = Maintenance(config, clock)
        self.recurring = Recurring(self.service)
        self.suppressor = Suppressor(open_outage, component_monitors(config))
        self.suppressor.on_suppressed = lambda event: metrics.events_suppressed.labels(
            event.kind.value
        ).inc()
        self._components_of: dict[str, list[str]] = {}
        self._index(config)
        self._changed = asyncio.Event()
        self._next_series: Millis = 0
        self._stopping = False
        self._idle = asyncio.Event()  # set while no step is running: stop() waits for it
        self._idle.set()
        self.on_step: Callable[[], None] | None = None  # after each step (windows may have moved)

    def _index(self, config: Config) -> None:
        components_of: dict[str, list[str]] = {}
        for component in config.components:
            for monitor in component.monitors:
                components_of.setdefault(monitor, []).append(component.id)
        self._components_of = components_of

    @property
    def windows(self) -> list[WindowView]:
        return list(self.suppressor.windows)

    async def start(self) -> None:
        """Bring config windows into the database and load what is in effect (before ingest)."""
        async with self.db.begin() as conn:
            await sync_config(self.service, self.recurring, conn, self.config, audit.SYSTEM)
        await self.step()

    def use(self, config: Config) -> None:
        """Components and their monitors from `config` (windows are not synced: `configure`)."""
        self.config = config
        self.service.config = config
        self.suppressor.configure(component_monitors(config))
        self._index(config)

    async def configure(self, config: Config, actor: str) -> None:
        """A reloaded config: apply its windows and components."""
        self.use(config)
        async with self.db.begin() as conn:
            await sync_config(self.service, self.recurring, conn, config, actor)
        self.changed()

    def changed(self, window: WindowView | None = None) -> None:
        """A window was created or changed (e.g. through the API, after its commit)."""
        if window is not None:
            # In effect at once in this process; the timer's next step reloads them all.
            others = [w for w in self.suppressor.windows if w.id != window.id]
            self.suppressor.windows = [*others, window]
            if window.status in (WindowStatus.COMPLETED, WindowStatus.CANCELLED):
                self.suppressor.release(window)
        self._changed.set()

    def covering(self, monitor_id: str, at: Millis | None = None) -> list[WindowView]:
        """Windows in effect now (or at `at`) that cover the monitor."""
        when = self.clock.now_ms() if at is None else at
        groups = self._components_of.get(monitor_id, [])
        return covering(self.suppressor.windows, monitor_id, groups, when)

    def covered(self, at: Millis | None = None) -> set[str]:
        """Every monitor a window in effect now (or at `at`) covers: `covering` of them all."""
        when = self.clock.now_ms() if at is None else at
        found: set[str] = set()
        for window in active_windows(self.suppressor.windows, when):
            found.update(window.monitors)
            if window.components:
                found.update(
                    monitor
                    for monitor, groups in self._components_of.items()
                    if window.covers(monitor, groups)
                )
        return found

    def monitor_state(self, monitor_id: str, state: MonitorState) -> MonitorState:
        """`maintenance` for a monitor a window covers now, else its state."""
        return MonitorState.MAINTENANCE if self.covering(monitor_id) else state

    async def step(self) -> Millis | None:
        """Make every transition that is due; return when the next one is."""
        now = self.clock.now_ms()
        if now >= self._next_series:
            self._next_series = now + SERIES_EVERY_MS
            async with self.db.connect() as conn:
                all_series = await store.list_series(conn)
            for series in all_series:
                async with self.db.begin() as conn:
                    if await store.try_lock(conn, store.SERIES_LOCK):
                        await self.recurring.materialise(conn, series)
        async with self.db.connect() as conn:
            due = await store.due(conn, now)
        for window in due:
            await self._transition(window, now)
        async with self.db.connect() as conn:
            self.suppressor.windows = await store.recent_and_open(conn, now - RECENT_MS)
            upcoming = await store.next_change(conn)
        self.metrics.maintenance_active.set(len(active_windows(self.suppressor.windows, now)))
        if self.suppressor.pending:
            self._poke_writer()
        if self.on_step is not None:
            self.on_step()
        return upcoming

    async def _transition(self, window: WindowView, now: Millis) -> None:
        current: WindowView | None = window
        try:
            if window.status == WindowStatus.SCHEDULED:
                async with self.db.begin() as conn:
                    current = await self.service.start(conn, window)
            if current is not None and current.scheduled_until <= now:
                async with self.db.begin() as conn:
                    done = await self.service.complete(conn, current, current.scheduled_until)
                self.suppressor.release(done)
        except WindowError as error:  # another instance got there first
            log.debug("maintenance window %s: %s", window.id, error)

    def _poke_writer(self) -> None:
        """Have the writer run a batch soon, so released windows re-alert promptly."""
        done = self.ingest.submit_work(Work())
        done.add_done_callback(_ignore_result)

    async def run(self) -> None:
        while not self._stopping:
            self._idle.clear()
            try:
                upcoming = await self.step()
            except Exception:
                log.exception("maintenance timer step failed")
                upcoming = self.clock.now_ms() + 5_000
            finally:
                self._idle.set()
            now = self.clock.now_ms()
            wait = REFRESH_S
            if upcoming is not None:
                wait = min(wait, max(MIN_WAIT_S, (upcoming - now) / 1000))
            await wait_event(self._changed, wait)
            self._changed.clear()

    async def stop(self) -> None:
        """Let a step in progress finish (never cancel one inside its transaction)."""
        self._stopping = True
        self._changed.set()
        await wait_event(self._idle, 30)


def _ignore_result(future: asyncio.Future[Any]) -> None:
    if not future.cancelled():
        future.exception()
