"""Heartbeat ("push") monitors: pings arrive at /ping/<token>; silence past the deadline is down.

A monitor is addressed by its token, its `uuid`, or the project's ping key and its `slug`
(Healthchecks' addresses). `/log` only records the ping; `?rid=` pairs a start with its end
(the end ping keeps the run's duration).

A success ping (or exit code 0) is an up result at the ping's time; `/fail` or a non-zero exit
code is a down result at once. A watchdog turns silence into a down result dated at the
deadline (last success + period + grace, or the next cron time + grace), with a deterministic
id so that a restart never records the same silence twice. `/start` marks a run as started:
if neither success nor failure follows within the grace, that is down too.
A paused monitor's pings are recorded but judge nothing, and its silence is never down; on
resume its deadline counts afresh from the resume (`set_paused`).
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from dataclasses import dataclass, replace
from datetime import datetime
from hmac import compare_digest
from typing import Any
from zoneinfo import ZoneInfo

from croniter import croniter

from uptally.checks.base import ErrorCode
from uptally.clock import Clock, Millis, iso, to_datetime
from uptally.config.schema import HeartbeatMonitor
from uptally.durations import format_duration_ms
from uptally.ids import new_id
from uptally.ingest import Ingest, Work
from uptally.metrics import Metrics
from uptally.results import Result
from uptally.store.heartbeats import HeartbeatRow, Ping
from uptally.waiting import wait_event

log = logging.getLogger(__name__)

BODY_LIMIT = 100_000  # the default of `heartbeats.max_body`
MAX_RUN_MS = 72 * 3_600_000  # a start older than this is no run's (Healthchecks' MAX_DURATION)
OPEN_RUNS = 100  # starts kept per monitor awaiting their end (runs with distinct rids)
LOCATION = "local"
# How long a ping waits for its commit before answering 503 (the job's curl --retry retries):
# a hung database must not hang every job that pings.
DURABLE_TIMEOUT_S = 4.0


class NotStored(Exception):
    """The ping could not be written in time; it was not acknowledged."""


@dataclass(frozen=True, slots=True)
class PingInput:
    kind: str  # success | start | fail | exit | log
    exit_code: int | None = None
    method: str = "GET"
    body: bytes = b""
    remote: str | None = None
    user_agent: str | None = None
    rid: str | None = None  # a run id (lowercase UUID text)


def deadline(
    monitor: HeartbeatMonitor, row: HeartbeatRow, timezone: str, since: Millis | None = None
) -> tuple[Millis, str]:
    """When silence becomes down, and why; from the last success (or the monitor's creation,
    or `since`: when monitoring resumed after a pause, if later)."""
    due = due_at(monitor, row, timezone, since)
    grace = format_duration_ms(monitor.grace_ms)
    if _running(row, since):
        return due, f"started at {iso(row.started_at)} but did not finish within {grace}"
    what = (
        f"last ping at {iso(row.last_ping_at)}" if row.last_ping_at is not None else "never pinged"
    )
    if since is not None and since > (row.last_ping_at or row.created_at):
        what += f", resumed at {iso(since)}"
    if monitor.period is not None:
        period = format_duration_ms(monitor.period)
        return due, f"no ping within {period} + {grace} grace ({what})"
    expected = to_datetime(due - monitor.grace_ms).astimezone(ZoneInfo(monitor.tz or timezone))
    schedule = f"schedule {monitor.schedule!r}"
    return due, f"expected a ping at {expected.isoformat()} ({schedule}) + {grace} grace ({what})"


def due_at(
    monitor: HeartbeatMonitor, row: HeartbeatRow, timezone: str, since: Millis | None = None
) -> Millis:
    """The deadline alone (cheap: no message)."""
    grace = monitor.grace_ms
    if _running(row, since):
        assert row.started_at is not None
        return row.started_at + grace
    base = row.last_ping_at if row.last_ping_at is not None else row.created_at
    if since is not None:
        base = max(base, since)
    if monitor.period is not None:
        return base + monitor.period + grace
    assert monitor.schedule is not None  # the schema requires period or schedule
    start = to_datetime(base).astimezone(ZoneInfo(monitor.tz or timezone))
    expected: datetime = croniter(monitor.schedule, start).get_next(datetime)
    return round(expected.timestamp() * 1000) + grace


def _retrieve(done: asyncio.Future[Any]) -> None:
    if not done.cancelled():
        done.exception()


def _running(row: HeartbeatRow, since: Millis | None = None) -> bool:
    """A run started and not finished (one started before a resume does not count)."""
    return (
        row.started_at is not None
        and (row.last_ping_at is None or row.started_at >= row.last_ping_at)
        and (since is None or row.started_at >= since)
    )


class Heartbeats:
    def __init__(
        self, ingest: Ingest, clock: Clock, metrics: Metrics, timezone: str = "UTC"
    ) -> None:
        self._ingest = ingest
        self._clock = clock
        self._metrics = metrics
        self.timezone = timezone
        self._monitors: dict[str, HeartbeatMonitor] = {}
        self._rows: dict[str, HeartbeatRow] = {}
        self._by_token: dict[str, str] = {}
        self._by_uuid: dict[str, str] = {}
        self._by_slug: dict[str, str] = {}
        self._starts: dict[str, dict[str | None, Millis]] = {}  # monitor -> rid -> start
        self.ping_key: str | None = None
        self.max_body = BODY_LIMIT
        self._reported: dict[str, Millis] = {}  # monitor -> deadline already reported as down
        self._due: dict[str, Millis] = {}
        self._paused: frozenset[str] = frozenset()
        self._resumed: dict[str, Millis] = {}  # monitor -> when its last pause ended
        self._next_wake: Millis | None = None
        self._wake = asyncio.Event()
        self._stopping = False

    def configure(
        self,
        monitors: list[HeartbeatMonitor],
        rows: dict[str, HeartbeatRow],
        ping_key: str | None = None,
        max_body: int = BODY_LIMIT,
    ) -> None:
        self._monitors = {m.id: m for m in monitors if m.enabled}
        self._rows = {key: row for key, row in rows.items() if key in self._monitors}
        self._by_token = {row.token: key for key, row in self._rows.items()}
        live = self._monitors.values()
        self._by_uuid = {str(m.uuid): m.id for m in live if m.uuid and m.id in self._rows}
        self._by_slug = {m.slug: m.id for m in live if m.slug and m.id in self._rows}
        self._starts = {k: v for k, v in self._starts.items() if k in self._rows}
        self.ping_key, self.max_body = ping_key, max_body
        self._recompute()

    def set_paused(self, paused: frozenset[str], resumed: dict[str, Millis]) -> None:
        """Which monitors are paused now, and when each one's last pause ended."""
        self._paused = paused
        self._resumed = dict(resumed)
        self._recompute()

    def _recompute(self) -> None:
        self._due = {
            key: self._due_of(key, row)
            for key, row in self._rows.items()
            if key not in self._paused
        }
        self._wake.set()

    def _due_of(self, key: str, row: HeartbeatRow) -> Millis:
        return due_at(self._monitors[key], row, self.timezone, self._resumed.get(key))

    def token(self, monitor: str) -> str | None:
        row = self._rows.get(monitor)
        return row.token if row else None

    def row(self, monitor: str) -> HeartbeatRow | None:
        return self._rows.get(monitor)

    def next_deadline(self, monitor: str) -> Millis | None:
        return self._due.get(monitor)

    def addressed(self, address: str) -> str | None:
        """The monitor a token or a uuid (/ping/<address>) names."""
        return self._by_token.get(address) or self._by_uuid.get(address.lower())

    def is_ping_key(self, given: str) -> bool:
        key = self.ping_key
        return bool(key) and compare_digest(given.encode(), (key or "").encode())

    def by_slug(self, ping_key: str, slug: str) -> str | None:
        """The monitor /ping/<ping_key>/<slug> names (None: wrong key or unknown slug)."""
        return self._by_slug.get(slug) if self.is_ping_key(ping_key) else None

    async def ping(self, token: str, ping: PingInput) -> bool:
        """Record a ping durably; False if the token is unknown. Returns after the commit;
        raises NotStored when it cannot commit within DURABLE_TIMEOUT_S."""
        monitor = self._by_token.get(token)
        if monitor is None:
            return False
        await self.record(monitor, ping)
        return True

    def _duration(
        self, monitor: str, row: HeartbeatRow, rid: str | None, now: Millis
    ) -> int | None:
        """How long the run this end ping closes took (its start with the same rid)."""
        start = self._starts.get(monitor, {}).pop(rid, None)
        if start is None and row.started_at is not None and row.started_rid == rid:
            start = row.started_at  # started before a restart
        return now - start if start is not None and now - start <= MAX_RUN_MS else None

    async def record(self, monitor: str, ping: PingInput) -> None:
        """Record a ping for a known monitor durably (see `ping`)."""
        now = self._clock.now_ms()
        row = self._rows[monitor]
        self._metrics.pings.labels(ping.kind).inc()
        body = ping.body[: self.max_body].decode("utf-8", "replace") if ping.body else None
        duration = None
        if ping.kind not in ("start", "log"):
            duration = self._duration(monitor, row, ping.rid, now)
        stored = Ping(
            new_id(now),
            monitor,
            now,
            ping.kind,
            ping.exit_code,
            ping.method,
            ping.remote,
            (ping.user_agent or "")[:256] or None,
            body,
            ping.rid,
            duration,
        )
        results: list[Result] = []
        paused = monitor in self._paused
        if ping.kind == "log":
            await self._commit(monitor, Work(pings=[stored]), row, row)
            return
        if ping.kind == "start":
            row = replace(row, started_at=now, started_rid=ping.rid)
            starts = self._starts.setdefault(monitor, {})
            starts.pop(ping.rid, None)
            starts[ping.rid] = now
            if len(starts) > OPEN_RUNS:
                del starts[next(iter(starts))]
        else:
            ok = ping.kind == "success" or (ping.kind == "exit" and ping.exit_code == 0)
            # As Healthchecks: an end with another run's rid leaves that run running.
            other_run = row.started_rid != ping.rid and ok and ping.rid is not None
            started = (row.started_at, row.started_rid) if other_run else (None, None)
            row = replace(
                row,
                last_ping_at=now,
                last_kind=ping.kind,
                started_at=started[0],
                started_rid=started[1],
            )
            if ok:
                message = ""
            elif ping.kind == "exit":
                message = f"the job exited with code {ping.exit_code}"
            else:
                message = "the job reported failure"
            if not paused:
                results.append(
                    Result(
                        stored.id,
                        monitor,
                        LOCATION,
                        now,
                        ok,
                        None,
                        None if ok else ErrorCode.FAILED.value,
                        message,
                    )
                )
        previous = self._rows[monitor]
        self._rows[monitor] = row
        self._reported.pop(monitor, None)
        if not paused:
            due = self._due[monitor] = self._due_of(monitor, row)
            if self._next_wake is None or due < self._next_wake:
                self._wake.set()  # only a /start can bring a deadline forward
        await self._commit(
            monitor, Work(results=results, pings=[stored], heartbeats=[row]), row, previous
        )

    async def _commit(
        self, monitor: str, work: Work, row: HeartbeatRow, previous: HeartbeatRow
    ) -> None:
        done = self._ingest.submit_work(work)
        try:
            async with asyncio.timeout(DURABLE_TIMEOUT_S):
                await asyncio.shield(done)
        except TimeoutError:
            done.add_done_callback(_retrieve)  # a late failure is the writer's to log
            if self._ingest.withdraw(work) and self._rows.get(monitor) is row:
                # Never written: the watchdog keeps the deadline it had before this ping.
                self._rows[monitor] = previous
                if monitor not in self._paused:
                    self._due[monitor] = self._due_of(monitor, previous)
            raise NotStored(
                f"the ping could not be stored within {DURABLE_TIMEOUT_S:g} s "
                "(the database does not answer); retry"
            ) from None

    async def run(self) -> None:
        """Watchdog: report silence as down once per deadline."""
        while not self._stopping:
            next_wake = self._next_wake = self.sweep()
            delay = (
                5.0
                if next_wake is None
                else min(5.0, max(0.05, (next_wake - self._clock.now_ms()) / 1000))
            )
            await wait_event(self._wake, delay)
            self._wake.clear()

    def stop(self) -> None:
        self._stopping = True
        self._wake.set()

    def sweep(self) -> Millis | None:
        """Submit down results for monitors past their deadline; return the next deadline."""
        now = self._clock.now_ms()
        soonest: Millis | None = None
        for key, due in self._due.items():
            if due > now:
                if soonest is None or due < soonest:
                    soonest = due
                continue
            if self._reported.get(key) == due:
                continue
            self._reported[key] = due
            _, why = deadline(
                self._monitors[key], self._rows[key], self.timezone, self._resumed.get(key)
            )
            # The same silence always gets the same id, so a restart cannot record it twice.
            result_id = "hb" + hashlib.blake2b(f"{key}:{due}".encode(), digest_size=12).hexdigest()
            result = Result(result_id, key, LOCATION, due, False, None, ErrorCode.LATE.value, why)
            self._ingest.submit_work(Work(results=[result]))
        return soonest
