"""Wires one uptally process: database, evaluator, writer, embedded probe, heartbeats, upkeep."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Coroutine, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from uptally.alertmanager import AlertReceiver, Notification
from uptally.audit import SYSTEM
from uptally.audit.config import record_config
from uptally.backup.create import Created
from uptally.backup.offsite import Bucket, Copied, describe
from uptally.backup.schedule import BackupSchedule, newest, with_backup_monitor
from uptally.clock import Clock, Millis, SystemClock
from uptally.config import load_config
from uptally.config.managed import KINDS, MONITOR, Kind, Problem, merge
from uptally.config.schema import ActiveMonitor, Config, ExternalMonitor, HeartbeatMonitor, Quorum
from uptally.evaluator import Evaluation, Evaluator, MonitorState, Rules
from uptally.fleet import Fleet
from uptally.heap import release_free_memory
from uptally.heartbeats import Heartbeats, PingInput
from uptally.ids import new_token
from uptally.ingest import Ingest, Work
from uptally.ingest.rollup_book import rebuild_recent
from uptally.ingest.write_health import reason_of
from uptally.livestate import LiveStates, Shown, location_state
from uptally.maintenance.timer import MaintenanceTimer
from uptally.managed import load as managed_load
from uptally.managed.changes import Change, ManagedObjects
from uptally.managed.targets import screen as screen_targets
from uptally.metrics import Metrics
from uptally.netguard import Guard
from uptally.notify.service import Notifier
from uptally.pausing import PauseConflict, Pausing
from uptally.probe.runner import ProbeRunner
from uptally.probe.secretsource import StoreSecrets
from uptally.redaction import Redactor
from uptally.results import Result
from uptally.secrets import Keyring, SecretKeyError, load_keyring
from uptally.sla.watch import SlaWatch
from uptally.store import heartbeats as heartbeat_store
from uptally.store import managed as managed_store
from uptally.store import meta
from uptally.store import monitoring_gaps as gap_store
from uptally.store import outages as outage_store
from uptally.store import probes as probe_store
from uptally.store import results as result_store
from uptally.store import states as state_store
from uptally.store.database import Database
from uptally.store.monitor_pauses import MonitorPause

log = logging.getLogger(__name__)

UPKEEP_INTERVAL_S = 3600.0
UPKEEP_DELAY_S = 300.0
CHECKPOINT_INTERVAL_S = 1.0
RELEASE_MEMORY_S = 60.0  # how often freed C heap goes back to the system (uptally.heap)
CLEAN_SHUTDOWN = "clean_shutdown"
FOLLOW_MANAGED_S = 1.0  # how soon a change made by another process (config apply) applies here
REBUILD_MS = 2 * 3_600_000  # hours of rollups recomputed after a crash
ALERTS_TIMEOUT_S = 4.0  # an Alertmanager notification waits this long for its commit


def rules_for(monitor: Any) -> Rules:
    if isinstance(monitor, HeartbeatMonitor | ExternalMonitor):
        return _rules(1, ("local",), "any")
    assert isinstance(monitor, ActiveMonitor)
    consensus: str | int = (
        monitor.consensus.quorum if isinstance(monitor.consensus, Quorum) else monitor.consensus
    )
    # A location that misses two checks in a row (and the timeout) no longer counts.
    stale = 2 * monitor.interval + monitor.timeout
    return _rules(monitor.confirm, tuple(monitor.locations), consensus, stale)


@lru_cache(maxsize=1024)
def _rules(
    confirm: int, locations: tuple[str, ...], consensus: str | int, stale: int | None = None
) -> Rules:
    return Rules(confirm, locations, consensus, stale)  # shared: most monitors have the same


RESTART_ONLY = ("backup", "security", "probe", "locations")  # the file's (not the API's)


class ReloadRefused(Exception):
    """A config change that cannot be applied while running (the old config keeps running)."""


class Runtime:
    def __init__(
        self,
        config: Config,
        db: Database,
        *,
        clock: Clock | None = None,
        metrics: Metrics | None = None,
        run_probe: bool = True,
        keyring: Keyring | None = None,
        offsite: Bucket | None = None,
    ) -> None:
        config = with_backup_monitor(config)  # backup currency is a heartbeat like any other
        self.file_config = config  # what the config file provisions
        self.config = config  # the effective config: the file's objects and the managed ones
        self.managed = managed_load.empty()  # objects made through the API, by kind and id
        self._managed_seen = 0  # the newest managed revision applied here
        self._applying = asyncio.Lock()
        self.keyring = keyring  # secrets at rest; from UPTALLY_SECRET_KEY when not given
        self.db = db
        self.clock = clock or SystemClock()
        self.metrics = metrics or Metrics()
        self.evaluator = Evaluator()
        self.ingest = Ingest(db, self.evaluator, self.clock, self.metrics)
        self.heartbeats = Heartbeats(self.ingest, self.clock, self.metrics, config.site.timezone)
        self.alerts = AlertReceiver()  # Alertmanager's notifications drive `external` monitors
        self.probe = ProbeRunner(
            "local",
            self.ingest.submit,
            self.clock,
            self.metrics,
            config.probe.concurrency,
            secrets=StoreSecrets(db, lambda: self.keyring),
            redactor=lambda: Redactor.with_keys(self.config.security.secret_query_keys),
            guard=self.api_guard,
        )
        self._run_probe = run_probe and config.probe.enabled
        self.fleet = Fleet(config, self.ingest, self.clock, self.metrics)
        # Paused monitors: kept out of the probe, the assignments and the heartbeat watchdog.
        self.pausing = Pausing(
            db, self.clock, self.evaluator, self.probe, self.fleet, self.heartbeats
        )
        # Incidents, their automation and commitments, and delivery of every outbox event.
        self.notifier = Notifier(
            db,
            self.clock,
            self.metrics,
            lambda: self.config,
            lambda: self.keyring,
            unstored=self.ingest.unstored,
            health=self.ingest.health,
        )
        self.maintenance = MaintenanceTimer(
            db, config, self.clock, self.ingest, self.evaluator.open_outage, self.metrics
        )
        self.ingest.mark_events = self.maintenance.suppressor.mark  # alerts during maintenance
        # What each monitor shows, its changes fanned out to live consoles (web/console).
        self.live = LiveStates(self.shown)
        self.ingest.listeners.append(self._evaluated)
        self._covered: set[str] = set()  # monitors under maintenance at the timer's last step
        self.maintenance.on_step = self._maintenance_stepped
        self.sla = SlaWatch(db, config, self.clock, self.metrics)
        # Monitors, components… created, changed and deleted at runtime (API, config apply).
        self.changes = ManagedObjects(
            db, self.clock, lambda: self.config, self.apply_changes, self._screen
        )
        self.started_at: int | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.backups: BackupSchedule | None = None
        self.offsite = offsite  # backup.s3's bucket; made at start when not given
        self.config_path: Path | None = None  # what a reload (SIGHUP, API) reads again
        self._reloading = asyncio.Lock()
        self.started = False

    async def start(self) -> None:
        if self.keyring is None:
            self.keyring = load_keyring()
        if self.config.backup.dir and self.config.backup.encrypt and self.keyring is None:
            raise SecretKeyError("backup.encrypt: true needs UPTALLY_SECRET_KEY")
        if self.config.backup.dir and self.config.backup.s3 and self.offsite is None:
            self.offsite = Bucket(self.config.backup.s3)  # OffsiteError: its keys are missing
        await self.db.migrate()
        if self.keyring is not None:
            async with self.db.begin() as conn:
                self.keyring = self.keyring.with_salt(await meta.installation_salt(self.db, conn))
        async with self.db.begin() as conn:
            loaded = await managed_load.load(conn)
            self.managed = await managed_load.settle(
                self.db, conn, self.file_config, loaded.objects, SYSTEM, self.clock.now_ms()
            )
        self._managed_seen = loaded.revision
        self._use(self._effective())
        for monitor in self.config.monitors:
            self.evaluator.set_rules(monitor.id, rules_for(monitor))
        horizon = self.clock.now_ms() - self.evaluator.horizon_ms
        async with self.db.begin() as conn:
            clean_stop = await meta.pop(conn, CLEAN_SHUTDOWN)
            crashed = clean_stop is None
            newest: list[Result] = []
            if crashed:
                # What was kept in memory is lost: recompute it from what was written for sure.
                since = self.clock.now_ms() - REBUILD_MS
                await rebuild_recent(self.db, conn, since)
                newest = await result_store.newest_since(conn, since)
            away = gap_store.away_since(
                await gap_store.last_alive(conn),
                self.clock.now_ms(),
                None if clean_stop is None else int(clean_stop),
            )
            await self._pause_for_gaps(conn, horizon)
            await self.pausing.load(conn, horizon)
            if away is not None:
                self.evaluator.hold(away)  # until monitoring resumes at the end of start-up
            self.evaluator.restore(
                await state_store.load_locations(conn),
                await outage_store.recent_detected(conn, horizon),
                await state_store.load_statuses(conn),
                newest,
            )
            await self._register_heartbeats(conn, crashed)
            self.fleet.restore(await probe_store.load_probes(conn))
            await record_config(self.db, conn, self.file_config, SYSTEM, "config.loaded")
        await self.maintenance.start()  # windows in effect are known before the first write
        await self.sla.configure(self.config, SYSTEM)
        self._spawn(self.ingest.run(), "ingest")
        self._spawn(self.maintenance.run(), "maintenance")
        self._spawn(self.sla.run(), "sla")
        self._spawn(self.heartbeats.run(), "heartbeats")
        self._spawn(self.fleet.run(), "fleet")
        # Only batches that wrote outbox events concern the notifier (a heartbeat ping or a
        # steady result does not: waking for those cost a round of queries per batch).
        self.ingest.listeners.append(lambda done: self.notifier.wake() if done.events else None)
        self._spawn(self.notifier.run(), "notifier")
        self._spawn(self.notifier.direct.run(), "notifier-direct")
        self._spawn(self._upkeep(), "upkeep")
        self._spawn(self._alive(), "alive")
        self._spawn(self._follow_managed(), "follow-managed")
        if self.db.is_sqlite:
            self._spawn(self._checkpoints(), "checkpoints")
        self._spawn(self._release_memory(), "release-memory")
        if self.config.backup.dir:
            await self._start_backups()
        if self._run_probe:
            self.probe.set_monitors(
                (m for m in self.config.monitors if isinstance(m, ActiveMonitor)),
                self._failed_here(),
            )
            self.probe.start()
        await self._resume_monitoring(away, clean=not crashed)
        self._covered = self.maintenance.covered()
        self.live.reset(m.id for m in self.config.monitors)
        self.started = True
        self.started_at = self.clock.now_ms()

    async def _resume_monitoring(self, away: Millis | None, clean: bool) -> None:
        """Monitoring resumes now: the time since the last sign of life (if nobody was running)
        is recorded as not monitored, and from now on silence counts again."""
        now = self.clock.now_ms()
        gap = (away, now) if away is not None and now > away else None
        async with self.db.begin() as conn:
            await gap_store.mark_alive(self.db, conn, now)
            if gap is not None:
                await gap_store.record_gap(self.db, conn, *gap, clean)
        self.evaluator.resume(now)
        if gap is not None:
            log.warning(
                "uptally was not running for %.0f s: that time is recorded as not monitored",
                (now - gap[0]) / 1000,
            )

    def _failed_here(self) -> dict[str, Millis]:
        """When the embedded probe's last check of each monitor failed, if it did (the state
        restored at start): those are retried on the failing schedule after a restart."""
        failed: dict[str, Millis] = {}
        for monitor in self.config.monitors:
            snapshot = self.evaluator.snapshot(monitor.id, self.probe.location)
            if snapshot is not None and snapshot.last is not None and not snapshot.last.ok:
                failed[monitor.id] = snapshot.last.at
        return failed

    async def load_state(self) -> None:
        """Read-only: load current states from the database (for commands beside a serve)."""
        async with self.db.connect() as conn:
            loaded = await managed_load.load(conn)
        # Read-only: an id the file also declares is the file's (serve settles it at start).
        self.managed = managed_load.unprovisioned(self.file_config, loaded.objects)
        self._use(self._effective())
        for monitor in self.config.monitors:
            self.evaluator.set_rules(monitor.id, rules_for(monitor))
        horizon = self.clock.now_ms() - self.evaluator.horizon_ms
        async with self.db.connect() as conn:
            await self._pause_for_gaps(conn, horizon)
            await self.pausing.load(conn, horizon)
            self.evaluator.restore(
                await state_store.load_locations(conn),
                await outage_store.recent_detected(conn, horizon),
                await state_store.load_statuses(conn),
            )

    async def stop(self) -> None:
        """Stop checking, let running checks report, write everything queued, close."""
        await self.notifier.stop()  # sends in flight finish and are recorded; leases released
        await self.maintenance.stop()
        await self.sla.stop()
        if self._run_probe:
            await self.probe.stop()
        self.heartbeats.stop()
        self.fleet.stop()
        await self.ingest.stop()
        ingest_task = self._tasks[0] if self._tasks else None
        if ingest_task is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(30):
                    await asyncio.shield(ingest_task)
        clean = ingest_task is not None and ingest_task.done() and not ingest_task.cancelled()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        if clean and self.ingest.pending == 0:
            async with self.db.begin() as conn:
                now = self.clock.now_ms()
                await meta.put(self.db, conn, CLEAN_SHUTDOWN, str(now))
                await gap_store.mark_alive(self.db, conn, now)
        await self.db.close()
        self.started = False

    def state_counts(self) -> dict[str, int]:
        counts = {state.value: 0 for state in MonitorState}
        for monitor in self.config.monitors:
            counts[self.monitor_state(monitor.id).value] += 1
        return counts

    def monitor_state(self, monitor_id: str) -> MonitorState:
        """A monitor's state as shown: paused, else under maintenance, else the evaluator's."""
        if self.pausing.is_paused(monitor_id):
            return MonitorState.PAUSED
        status = self.evaluator.status(monitor_id)
        state = status.state if status else MonitorState.UNKNOWN
        return self.maintenance.monitor_state(monitor_id, state)

    def shown(self, monitor_id: str) -> Shown:
        """What a monitor shows: its state and each of its locations' (see uptally.livestate)."""
        rules = self.evaluator.rules(monitor_id)
        now = self.clock.now_ms()
        locations = tuple(
            (name, location_state(self.evaluator.snapshot(monitor_id, name), rules, now))
            for name in (rules.locations if rules else ("local",))
        )
        return self.monitor_state(monitor_id).value, locations

    def _evaluated(self, evaluation: Evaluation) -> None:
        if evaluation.statuses or evaluation.locations:
            self.live.check({*evaluation.statuses, *(m for m, _ in evaluation.locations)})

    def _maintenance_stepped(self) -> None:
        covered = self.maintenance.covered()
        changed, self._covered = covered ^ self._covered, covered
        self.live.check(changed)

    async def receive_alerts(self, notification: Notification) -> tuple[int, int]:
        """Feed an Alertmanager notification to the external monitors through the ingest path;
        (alert/monitor pairs matched, new results) once committed. TimeoutError when the
        database does not commit within ALERTS_TIMEOUT_S (nothing was written: Alertmanager
        retries)."""
        monitors = [m for m in self.config.monitors if isinstance(m, ExternalMonitor)]
        received = self.alerts.receive(notification, monitors, self.clock.now_ms())
        if not received.results:
            return received.matched, 0
        work = Work(results=received.results)
        done = self.ingest.submit_work(work)
        try:
            async with asyncio.timeout(ALERTS_TIMEOUT_S):
                await asyncio.shield(done)
        except TimeoutError:
            if not self.ingest.withdraw(work):  # the writer has it: its late failure is its own
                done.add_done_callback(lambda f: f.cancelled() or f.exception())
            raise
        return received.matched, work.fresh

    async def pause(self, monitor_id: str, actor: str) -> MonitorPause:
        """Pause a monitor (PauseConflict if paused): checks stop at once, see uptally.pausing."""
        try:
            return await self.pausing.pause(monitor_id, actor)
        finally:
            self.live.check([monitor_id])

    async def resume(self, monitor_id: str, actor: str) -> MonitorPause:
        """Resume a paused monitor (PauseConflict if it is running)."""
        try:
            return await self.pausing.resume(monitor_id, actor)
        finally:
            self.live.check([monitor_id])

    async def _pause_for_gaps(self, conn: Any, horizon: Millis) -> None:
        """The evaluator counts no location's silence while uptally was not running."""
        for gap in await gap_store.list_gaps(conn, since=horizon):
            self.evaluator.pause(gap.start, gap.end)

    async def _alive(self) -> None:
        """A sign of life every few seconds: where the next start's "not monitored" gap begins
        if this process dies without a clean stop."""
        failing = False
        while True:
            await asyncio.sleep(gap_store.ALIVE_EVERY_MS / 1000)
            try:
                async with asyncio.timeout(2 * gap_store.ALIVE_EVERY_MS / 1000):
                    async with self.db.begin() as conn:
                        await gap_store.mark_alive(self.db, conn, self.clock.now_ms())
                failing = False
            except Exception as error:
                if not failing:  # said once per failing spell, not every few seconds
                    log.warning("cannot record that uptally is alive: %s", error)
                failing = True

    async def _register_heartbeats(self, conn: Any, crashed: bool) -> None:
        existing = {row.monitor: row for row in await heartbeat_store.load_heartbeats(conn)}
        now = self.clock.now_ms()
        for monitor in self.config.monitors:
            if not isinstance(monitor, HeartbeatMonitor):
                continue
            row = existing.get(monitor.id)
            token = monitor.token or (row.token if row else new_token())
            if row is None or row.token != token:
                await heartbeat_store.register(self.db, conn, monitor.id, token, now)
        rows = {row.monitor: row for row in await heartbeat_store.load_heartbeats(conn)}
        if crashed:
            latest = await heartbeat_store.recent_pings(conn, now - REBUILD_MS)
            rows = {
                key: heartbeat_store.repaired(row, latest.get(key, {})) for key, row in rows.items()
            }
        settings = self.config.heartbeats
        self.heartbeats.configure(
            [m for m in self.config.monitors if isinstance(m, HeartbeatMonitor)],
            rows,
            os.environ.get(settings.ping_key_env) if settings.ping_key_env else None,
            settings.max_body,
        )

    async def _upkeep(self) -> None:
        """Hourly, starting a few minutes after start: drop raw results and pings past retention."""
        await asyncio.sleep(UPKEEP_DELAY_S)
        while True:
            try:
                await self.prune()
            except Exception:
                log.exception("pruning old results failed")
            await asyncio.sleep(UPKEEP_INTERVAL_S)

    async def _checkpoints(self) -> None:
        failing = False  # said once per episode, not every second
        while True:
            await asyncio.sleep(CHECKPOINT_INTERVAL_S)
            try:
                await self.db.checkpoint()
            except Exception as error:
                if not failing:
                    log.warning(
                        "SQLite checkpoints failing (retried every second): %s", reason_of(error)
                    )
                failing = True
            else:
                if failing:
                    log.info("SQLite checkpoints succeed again")
                failing = False

    async def _release_memory(self) -> None:
        """Every minute: what glibc holds free goes back to the system, or the resident set of
        a busy process creeps up by tens of MB with freed batches (in a thread: it takes ms)."""
        while True:
            await asyncio.sleep(RELEASE_MEMORY_S)
            await asyncio.to_thread(release_free_memory)

    async def prune(self) -> int:
        """Delete raw results and pings past their retention (rollups and outages stay)."""
        now = self.clock.now_ms()
        monitors = [m.id for m in self.config.monitors]
        removed = 0
        for start in range(0, len(monitors), 500):
            chunk = monitors[start : start + 500]
            async with self.db.begin() as conn:
                removed += await result_store.prune_results(
                    conn, chunk, now - self.config.retention.results
                )
                removed += await heartbeat_store.prune_pings(
                    conn, chunk, now - self.config.retention.pings
                )
        return removed

    async def reload(self, actor: str) -> dict[str, Any]:
        """Read the config file again and apply it whole, or refuse it whole (ConfigError,
        ReloadRefused) and keep the running one. Audit-logged as config.reloaded."""
        if self.config_path is None:
            raise ReloadRefused("this process was not started from a config file")
        async with self._reloading:
            new = with_backup_monitor(await asyncio.to_thread(load_config, self.config_path))
            # Against the file's own: locations made through the API change at runtime.
            fixed = [
                name
                for name in RESTART_ONLY
                if getattr(new, name) != getattr(self.file_config, name)
            ]
            if fixed:
                raise ReloadRefused(f"{', '.join(fixed)} can change only with a restart")
            # API changes are made between reloads, never in the middle of one (or one is lost)
            async with self.changes.lock, self._applying:
                old, old_file, old_managed = self.config, self.file_config, self.managed
                file = new
                try:
                    async with self.db.begin() as conn:
                        self.managed = await managed_load.settle(
                            self.db, conn, file, self.managed, actor, self.clock.now_ms()
                        )
                        self.file_config = file
                        new = self.config = self._effective()
                        await self._register_heartbeats(conn, False)
                        entry = await record_config(self.db, conn, file, actor, "config.reloaded")
                except Exception:
                    self.config, self.file_config, self.managed = old, old_file, old_managed
                    async with self.db.begin() as conn:
                        await self._register_heartbeats(conn, False)
                    raise
                kept = {m.id for m in new.monitors}
                for monitor in old.monitors:
                    if monitor.id not in kept:
                        self.evaluator.forget(monitor.id)
                for monitor in new.monitors:
                    self.evaluator.set_rules(monitor.id, rules_for(monitor))
                self.live.reset(m.id for m in new.monitors)
                self.heartbeats.timezone = new.site.timezone
                self.fleet.configure(new)
                await self.sla.configure(new, actor)
                await self.maintenance.configure(new, actor)
                if self._run_probe:
                    self.probe.set_monitors(m for m in new.monitors if isinstance(m, ActiveMonitor))
                return entry.details["changes"] if entry else {}

    # -- objects managed at runtime --------------------------------------------------------------

    def _effective(self) -> Config:
        return merge(self.file_config, {k: list(v.values()) for k, v in self.managed.items()})

    def _use(self, config: Config) -> None:
        """Parts that keep the config they were made with take the effective one."""
        self.config = config
        self.fleet.configure(config)
        self.maintenance.use(config)
        self.sla.config = config

    def api_guard(self, monitor_id: str) -> Guard | None:
        """The SSRF guard over checks of a monitor made through the API (None: a monitor of the
        config file, which its operator wrote, or `security.ssrf_guard: false`)."""
        security = self.config.security
        if not security.ssrf_guard or monitor_id not in self.managed["monitor"]:
            return None
        return security.guard

    async def _screen(self, kind: Kind, objects: Sequence[BaseModel], many: bool) -> list[Problem]:
        security = self.config.security
        if kind is not MONITOR or not security.ssrf_guard:
            return []
        return await screen_targets(objects, security.guard, many)

    async def apply_changes(self, changes: Sequence[Change]) -> None:
        """Changes this process made (stored and audited): in effect from now on."""
        async with self._applying:
            for change in changes:
                objects = self.managed[change.kind.name]
                if change.after is None:
                    objects.pop(change.id, None)
                else:
                    objects[change.id] = change.after
                if change.row.revision == self._managed_seen + 1:
                    self._managed_seen = change.row.revision  # else the follower reads them
            await self._apply([(c.kind.name, c.id) for c in changes])

    async def _follow_managed(self) -> None:
        """Every second: changes another process made (`uptally config apply`, a peer)."""
        failing = False
        while True:
            await asyncio.sleep(FOLLOW_MANAGED_S)
            try:
                async with self.db.connect() as conn:
                    if await managed_store.revision(conn) <= self._managed_seen:
                        continue
                    rows = await managed_store.changed_since(conn, self._managed_seen)
                await self._take(rows)
                failing = False
            except Exception as error:
                if not failing:
                    log.warning("cannot read changes to managed objects: %s", error)
                failing = True

    async def _take(self, rows: Sequence[managed_store.ManagedRow]) -> None:
        async with self._applying:
            parsed = managed_load.parse(rows)
            touched = []
            for row in rows:
                kind = KINDS.get(row.kind)
                if kind is None or self.file_config.origin(kind.section, row.id) is not None:
                    continue  # the file provisions it (settled when the file is loaded)
                obj = parsed[row.kind].get(row.id)
                if obj is None:
                    self.managed[row.kind].pop(row.id, None)
                else:
                    self.managed[row.kind][row.id] = obj
                touched.append((row.kind, row.id))
            if rows:
                self._managed_seen = max(self._managed_seen, *(r.revision for r in rows))
            await self._apply(touched)

    async def _apply(self, touched: Sequence[tuple[str, str]]) -> None:
        """Tell the running parts what changed: only the touched monitors are rescheduled."""
        old = self.config
        new = self._effective()
        self._use(new)
        ids = {object_id for kind, object_id in touched if kind == MONITOR.name}
        if not ids:
            return
        try:
            await self._apply_monitors(old, new, ids)
        finally:
            there = {m.id for m in self.config.monitors if m.id in ids}
            self.live.forget(ids - there)
            self.live.track(there)

    async def _apply_monitors(self, old: Config, new: Config, ids: set[str]) -> None:
        before = {m.id: m for m in old.monitors if m.id in ids}
        now_there = [m for m in new.monitors if m.id in ids]
        gone = ids - {m.id for m in now_there}
        for key in gone:
            self.evaluator.forget(key)
            if self.pausing.is_paused(key):  # its pause ends with it (made again: not paused)
                with contextlib.suppress(PauseConflict):  # ended by another instance already
                    await self.pausing.resume(key, SYSTEM)
        for monitor in now_there:
            self.evaluator.set_rules(monitor.id, rules_for(monitor))
        heartbeats = [m for m in before.values() if isinstance(m, HeartbeatMonitor)]
        if heartbeats or any(isinstance(m, HeartbeatMonitor) for m in now_there):
            async with self.db.begin() as conn:
                await self._register_heartbeats(conn, False)
        if self._run_probe:
            active = [m for m in now_there if isinstance(m, ActiveMonitor)]
            others = [m.id for m in now_there if not isinstance(m, ActiveMonitor)]
            self.probe.update(active, [*gone, *others])

    async def _start_backups(self) -> None:
        """Scheduled backups; each outcome pings the backup-currency heartbeat."""
        settings = self.config.backup
        token = self.heartbeats.token(settings.monitor)

        async def succeeded(created: Created) -> None:
            self.metrics.last_backup.set(created.manifest.created_at_ms / 1000)
            if token:
                await self.heartbeats.ping(token, PingInput("success", method="INTERNAL"))

        async def failed(message: str) -> None:
            if token:
                ping = PingInput("fail", method="INTERNAL", body=message.encode()[:1000])
                await self.heartbeats.ping(token, ping)

        # Off-site copies are judged apart from the heartbeat (see backup.schedule).
        newest_offsite = 0

        def offsite_made(created_at_ms: int) -> None:
            nonlocal newest_offsite
            newest_offsite = max(newest_offsite, created_at_ms)
            self.metrics.last_offsite_backup.set(newest_offsite / 1000)

        async def copied(result: Copied) -> None:
            self.metrics.offsite_backups.labels("ok" if result.ok else "failed").inc()
            if result.ok:
                offsite_made(result.created_at_ms)

        async def offsite_currency(bucket: Bucket) -> None:
            try:
                remote = await bucket.list_backups()
            except Exception as error:
                log.warning("cannot list the off-site backups in %s: %s", bucket, describe(error))
                return
            if remote:
                offsite_made(remote[-1].manifest.created_at_ms)

        schedule = BackupSchedule(
            self.db,
            settings,
            self.keyring,
            self.clock,
            succeeded,
            failed,
            offsite=self.offsite,
            on_offsite=copied,
        )
        latest = await asyncio.to_thread(newest, schedule.directory)
        if latest is not None:
            self.metrics.last_backup.set(latest.created_at_ms / 1000)
        if self.offsite is not None:
            for result in ("ok", "failed"):
                self.metrics.offsite_backups.labels(result)  # exported as 0 from the start
            self._spawn(offsite_currency(self.offsite), "offsite-currency")
        self.backups = schedule
        self._spawn(schedule.run(), "backups")

    def _spawn(self, coroutine: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.get_running_loop().create_task(coroutine, name=name)
        self._tasks.append(task)
