"""The hub's view of its probe locations: who they are, what they run, whether they are alive.

Agents authenticate with their location's token (the hub keeps only its SHA-256), pull the
monitors assigned to their location, and push results. Each push is a contact: the hub records
the agent's version, queue depth, clock offset and canary health, and raises `probe.degraded`
(its canaries fail), `probe.offline` (silent for `probe.offline_after`) and `probe.online`.
Silence is counted from the hub's own start at the earliest: an agent cannot have reached a hub
that was not running, so a hub restart alone never marks its agents offline.
Whether a location's results count for consensus is decided by the evaluator from the results
themselves (see evaluator/timeline.py); this module tells people.

"Check now" reaches an agent through RunRequests: the agent keeps one request waiting for run
requests (`GET /api/v1/probes/runs`, a long poll) and pushes the result like any other, under
the id the hub gave the request, which is how the hub knows it is the answer.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging
import os
from collections.abc import Awaitable, Iterable
from dataclasses import dataclass, field
from typing import Any

from uptally.clock import Clock, Millis
from uptally.config.schema import ActiveMonitor, Config, monitor_document
from uptally.events import Event, EventKind
from uptally.ids import new_id
from uptally.ingest import Ingest, Work
from uptally.metrics import Metrics
from uptally.results import Result
from uptally.store.probes import Gap, ProbeRow
from uptally.waiting import wait_event

log = logging.getLogger(__name__)

WATCH_INTERVAL_S = 5.0
MAX_TOTAL = 2**53  # running totals saturate here: far below the 64-bit columns they fill


def token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


@dataclass(frozen=True, slots=True)
class Assignment:
    version: str
    monitors: list[dict[str, Any]]
    canaries: list[str] | None  # None: not configured, the agent uses its defaults


@dataclass(slots=True)
class Report:
    """What an agent says about itself with each push."""

    version: str | None = None
    address: str | None = None
    queue_depth: int | None = None
    degraded: bool = False
    canaries: list[dict[str, Any]] = field(default_factory=list)
    dropped: list[Gap] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class RunRequest:
    """Run this monitor once now; the result carries `id` as its own id."""

    id: str
    monitor: dict[str, Any]  # its document as the hub has it now (the agent's may be older)


class RunRequests:
    """Run requests waiting for their location's agent, and their callers waiting for results."""

    def __init__(self) -> None:
        self._pending: dict[str, list[RunRequest]] = {}
        self._signals: dict[str, asyncio.Event] = {}
        self._waiters: dict[str, tuple[str, str, asyncio.Future[Result]]] = {}
        self._stopping = False

    def ask(
        self, location: str, monitor: dict[str, Any], at: Millis
    ) -> tuple[str, Awaitable[Result]]:
        """Ask `location` to run `monitor` now: the request id and the future of its result
        (call `forget(id)` when no longer waiting)."""
        request = RunRequest(new_id(at), monitor)
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        self._waiters[request.id] = (location, str(monitor["id"]), future)
        self._pending.setdefault(location, []).append(request)
        self._signals.setdefault(location, asyncio.Event()).set()
        return request.id, future

    def forget(self, request_id: str) -> None:
        """The caller stopped waiting: an agent that has not taken the request never will."""
        found = self._waiters.pop(request_id, None)
        if found is None:
            return
        location = found[0]
        left = [r for r in self._pending.get(location, []) if r.id != request_id]
        if left:
            self._pending[location] = left
        else:
            self._pending.pop(location, None)

    async def take(self, location: str, wait_s: float) -> list[RunRequest]:
        """The location's pending requests, waiting up to `wait_s` for one (a long poll)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        signal = self._signals.setdefault(location, asyncio.Event())
        while True:
            signal.clear()
            taken = self._pending.pop(location, [])
            remaining = deadline - loop.time()
            if taken or self._stopping or remaining <= 0:
                return taken
            await wait_event(signal, remaining)

    def answered(self, location: str, results: Iterable[Result]) -> None:
        """Results pushed (and written) by `location`: those that answer a request end its wait."""
        for result in results:
            found = self._waiters.get(result.id)
            if found is None or found[:2] != (location, result.monitor):
                continue  # not a request, or not to this location for this monitor
            del self._waiters[result.id]
            if not found[2].done():
                found[2].set_result(result)

    def stop(self) -> None:
        """Waiting agents are answered at once (a long poll must not hold a shutdown)."""
        self._stopping = True
        for signal in self._signals.values():
            signal.set()


class Fleet:
    def __init__(self, config: Config, ingest: Ingest, clock: Clock, metrics: Metrics) -> None:
        self.runs = RunRequests()
        self._ingest = ingest
        self._clock = clock
        self._started = clock.now_ms()
        self._metrics = metrics
        self._rows: dict[str, ProbeRow] = {}
        self._hashes: dict[str, bytes] = {}
        self._assignments: dict[str, Assignment] = {}
        self._documents: dict[str, tuple[ActiveMonitor, dict[str, Any]]] = {}
        self._tokenless: set[str] = set()  # locations without a token, warned about once
        self._stopping = False
        self._wake = asyncio.Event()
        self.config = config
        self.paused: frozenset[str] = frozenset()  # not assigned to anyone while paused
        self.configure(config)

    # -- configuration ---------------------------------------------------------------------

    def configure(self, config: Config) -> None:
        self.config = config
        self._hashes = {}
        tokenless = set()
        for location in config.locations:
            token = os.environ.get(location.token_env) if location.token_env else None
            if location.token_hash:  # made through the API: only the hash was ever kept
                self._hashes[location.name] = bytes.fromhex(location.token_hash)
            elif token:
                self._hashes[location.name] = token_hash(token)
            else:
                tokenless.add(location.name)
                if location.name not in self._tokenless:  # said once, not at every API change
                    log.warning(
                        "location %s has no token (set %s): its agent cannot connect",
                        location.name,
                        location.token_env or "token_env",
                    )
        self._tokenless = tokenless
        self._assign()

    def set_paused(self, paused: frozenset[str]) -> None:
        """Paused monitors leave every assignment: agents see a new version at their next pull,
        and what they still send for them is refused as unassigned (and dropped by the agent)."""
        self.paused = paused
        self._assign()

    def _assign(self) -> None:
        config = self.config
        documents = {
            m.id: self._document(m)
            for m in config.monitors
            if isinstance(m, ActiveMonitor) and m.enabled
        }
        self._documents = {key: self._documents[key] for key in documents}
        self._assignments = {
            location.name: self._assignment(
                config, location.name, location.canaries, self.paused, documents
            )
            for location in config.locations
        }
        for name in self._assignments:
            self._rows.setdefault(name, ProbeRow(name, "never"))
        for name in self._rows.keys() - self._assignments.keys():
            del self._rows[name]  # a location deleted at runtime is watched no more

    def _document(self, monitor: ActiveMonitor) -> dict[str, Any]:
        """A monitor as agents receive it; remembered while the monitor object is the same (a
        change at runtime replaces one monitor of thousands)."""
        known = self._documents.get(monitor.id)
        if known is not None and known[0] is monitor:
            return known[1]
        # tags are for people finding monitors: an agent has no use for them, and a retag
        # must not change the assignment's version (every agent would fetch it again)
        document = {k: v for k, v in monitor_document(monitor).items() if k != "tags"}
        self._documents[monitor.id] = (monitor, document)
        return document

    @staticmethod
    def _assignment(
        config: Config,
        location: str,
        canaries: list[str] | None,
        paused: frozenset[str],
        documents: dict[str, dict[str, Any]],
    ) -> Assignment:
        monitors = [
            documents[m.id]
            for m in config.monitors
            if isinstance(m, ActiveMonitor)
            and m.enabled
            and location in m.locations
            and m.id not in paused
        ]
        body = json.dumps([monitors, canaries], sort_keys=True, separators=(",", ":"))
        version = hashlib.sha256(body.encode()).hexdigest()[:16]
        return Assignment(version, monitors, None if canaries is None else list(canaries))

    def restore(self, rows: Iterable[ProbeRow]) -> None:
        for row in rows:
            if row.name in self._assignments:
                self._rows[row.name] = row

    # -- agents ------------------------------------------------------------------------------

    def authenticate(self, token: str) -> str | None:
        """The location whose token this is, or None (constant-time comparisons throughout)."""
        presented = token_hash(token)
        found = None
        for name, expected in self._hashes.items():
            if hmac.compare_digest(presented, expected):
                found = name
        if found is None:
            self._metrics.probe_auth_failures.inc()
        return found

    def knows(self, location: str) -> bool:
        """Still a location (one deleted at runtime is not, though its agent's request may
        have been let in just before)."""
        return location in self._assignments

    def assignment(self, location: str) -> Assignment:
        return self._assignments[location]

    def assigned(self, location: str) -> set[str]:
        return {m["id"] for m in self._assignments[location].monitors}

    async def push(
        self, location: str, report: Report, clock_offset_ms: int, results: list[Result]
    ) -> Work:
        """Record a push and write it with its results; returns the written work (`fresh`).

        The batch is written as the agent's (see Ingest): if it is refused (RefusedWork), what
        this contact changed in memory is undone, so one bad batch leaves nothing behind."""
        before = _copy(self._rows[location])
        work = self.contact(location, report, clock_offset_ms)
        work.results = results
        work.source = location
        try:
            await self._ingest.submit_work(work)
        except Exception:
            if self._rows.get(location) == work.probes[-1]:  # no later contact moved on since
                self._rows[location] = before
            raise
        self.runs.answered(location, results)
        dropped = sum(gap.count for gap in report.dropped)
        if dropped:
            self._metrics.probe_dropped.labels(location).inc(dropped)
        return work

    def contact(self, location: str, report: Report, clock_offset_ms: int) -> Work:
        """Record a push; returns what must be written with its results (state, events, gaps)."""
        now = self._clock.now_ms()
        row = self._rows[location]
        before = row.state
        row.last_contact_at = now
        row.version = report.version
        row.address = report.address
        row.queue_depth = report.queue_depth
        row.clock_offset_ms = clock_offset_ms
        row.canaries = report.canaries
        row.dropped_total = min(row.dropped_total + sum(g.count for g in report.dropped), MAX_TOTAL)
        row.state = "degraded" if report.degraded else "up"
        events: list[Event] = []
        if row.state != before:
            row.since = now
            events.append(self._event(location, row, before))
        self._metrics.probe_state.labels(location).set(1 if row.state == "up" else 0)
        self._metrics.probe_clock_offset.labels(location).set(clock_offset_ms / 1000)
        return Work(events=events, gaps=list(report.dropped), probes=[_copy(row)])

    def rejected(self, location: str, count: int) -> None:
        row = self._rows[location]
        row.rejected_total = min(row.rejected_total + count, MAX_TOTAL)

    def statuses(self) -> list[ProbeRow]:
        return [self._rows[name] for name in sorted(self._rows)]

    # -- liveness ----------------------------------------------------------------------------

    async def run(self) -> None:
        """Mark silent locations offline (and say so once)."""
        while not self._stopping:
            self.sweep()
            await wait_event(self._wake, WATCH_INTERVAL_S)

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()
        self.runs.stop()

    def sweep(self) -> None:
        now = self._clock.now_ms()
        limit = self.config.probe.offline_after
        work = Work()
        for name, row in self._rows.items():
            heard = max(row.last_contact_at or 0, self._started)  # or had the chance to be
            silent = now - heard > limit
            if row.state in ("up", "degraded") and silent:
                before, row.state, row.since = row.state, "offline", now
                self._metrics.probe_state.labels(name).set(0)
                work.events.append(self._event(name, row, before))
                work.probes.append(_copy(row))
        if work.events:
            self._ingest.submit_work(work)

    @staticmethod
    def _event(location: str, row: ProbeRow, before: str) -> Event:
        kind = {
            "offline": EventKind.PROBE_OFFLINE,
            "degraded": EventKind.PROBE_DEGRADED,
        }.get(row.state, EventKind.PROBE_ONLINE)
        data = {
            "location": location,
            "state": row.state,
            "previous": before,
            "last_contact_at": row.last_contact_at,
            "canaries": row.canaries,
        }
        at: Millis = row.since or 0
        return Event(kind, at, location, data)


def _copy(row: ProbeRow) -> ProbeRow:
    return ProbeRow(
        row.name,
        row.state,
        row.since,
        row.last_contact_at,
        row.version,
        row.address,
        row.clock_offset_ms,
        row.queue_depth,
        row.dropped_total,
        row.rejected_total,
        list(row.canaries),
    )
