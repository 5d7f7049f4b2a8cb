"""The writer: batches of results (and pings) → stored rows, evaluation, outages and events.

Everything that matters is written in one transaction per batch, so an event exists exactly when
the state change that caused it does. Batching is natural group commit: while one transaction
is written the next batch accumulates — no artificial delay at low load, large batches at high
load. A failed write is retried with the same evaluation (the evaluator is never fed twice).

An agent's batch is untrusted input (`Work.source` names its location): it is validated at the
API, and if a transaction that holds one still fails for anything but an unreachable database,
the rest is written without it and each agent's batch alone, so a bad batch costs only itself.

What only refreshes (a location's latest success, hourly rollups) is kept in memory and written
every `flush_interval` and on shutdown; a crash loses none of it that matters (see RollupBook).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError
from sqlalchemy.ext.asyncio import AsyncConnection

from uptally.clock import Clock, Millis
from uptally.evaluator import Evaluation, Evaluator, LocationSnapshot
from uptally.events import Event
from uptally.ingest.rollup_book import RollupBook
from uptally.metrics import Metrics
from uptally.results import Result
from uptally.store import heartbeats as heartbeat_store
from uptally.store import outages as outage_store
from uptally.store import outbox as outbox_store
from uptally.store import probes as probe_store
from uptally.store import results as result_store
from uptally.store import rollups as rollup_store
from uptally.store import states as state_store
from uptally.store.database import Database
from uptally.store.heartbeats import HeartbeatRow, Ping
from uptally.store.probes import Gap, ProbeRow
from uptally.waiting import wait_event

log = logging.getLogger(__name__)

_RETRYABLE = (OperationalError, DBAPIError, OSError)


def _transient(error: BaseException) -> bool:
    """The database (unreachable, busy, hung), not the data: retrying the same write may work.
    A value the database refuses (out of range, NUL in text, …) fails the same way forever."""
    if isinstance(error, OperationalError | InterfaceError | OSError):
        return True
    return isinstance(error, DBAPIError) and error.connection_invalidated


LINGER_S = 0.1
TICK_S = 5.0


@dataclass(slots=True)
class Work:
    """Inputs that must be written together; `done` resolves once they are committed."""

    results: list[Result] = field(default_factory=list)
    pings: list[Ping] = field(default_factory=list)
    heartbeats: list[HeartbeatRow] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)
    gaps: list[Gap] = field(default_factory=list)
    probes: list[ProbeRow] = field(default_factory=list)
    fresh: int = 0  # after the commit: how many of `results` were new
    done: asyncio.Future[Evaluation] | None = None
    source: str | None = None  # the location of the agent that sent it (untrusted input)


class RefusedWork(Exception):
    """An agent's batch that could not be stored (the rest of the hub's work was written)."""


class _Unwritten(Exception):
    """A write failed before anything was evaluated: its inputs may be written another way."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


class Ingest:
    def __init__(
        self,
        db: Database,
        evaluator: Evaluator,
        clock: Clock,
        metrics: Metrics,
        *,
        max_batch: int = 5000,
        max_queue: int = 500_000,
        flush_interval_s: float = 60.0,
    ) -> None:
        self.db = db
        self.evaluator = evaluator
        self.clock = clock
        self.metrics = metrics
        self.max_batch = max_batch
        self.max_queue = max_queue
        self.flush_interval_s = flush_interval_s
        self.rollups = RollupBook()
        self.listeners: list[Callable[[Evaluation], None]] = []
        self._results: deque[Result] = deque()  # trusted fresh results (embedded probe)
        self._work: deque[Work] = deque()
        self._touched: set[tuple[str, str]] = set()
        self._heartbeats: dict[str, HeartbeatRow] = {}  # latest ping state, written lazily
        self._wake = asyncio.Event()
        self._urgent = asyncio.Event()  # someone waits for a commit: do not linger
        self._oldest = 0.0  # when the oldest queued result arrived
        self._idle = asyncio.Event()
        self._idle.set()
        self._stopping = False
        self._last_flush = time.monotonic()
        self._last_tick = time.monotonic()
        self._tick_due = False  # re-judge monitors whose locations went silent
        # Set by the runtime: marks events before they are written (maintenance suppression).
        self.mark_events: Callable[[list[Event], Millis], list[Event]] | None = None

    @property
    def pending(self) -> int:
        return len(self._results) + sum(len(w.results) + len(w.pings) for w in self._work)

    def submit(self, result: Result) -> None:
        """Queue a fresh result for writing (never blocks)."""
        if len(self._results) >= self.max_queue:
            self._results.popleft()
            self.metrics.dropped.inc()
        if not self._results:
            self._oldest = time.monotonic()
        self._results.append(result)
        if len(self._results) >= self.max_batch:
            self._urgent.set()
        if self._idle.is_set():
            self._idle.clear()
            self._wake.set()

    def submit_work(self, work: Work) -> asyncio.Future[Evaluation]:
        """Queue inputs that are written together; await the future for the commit."""
        work.done = asyncio.get_running_loop().create_future()
        self._work.append(work)
        self._idle.clear()
        self._wake.set()
        self._urgent.set()
        return work.done

    def withdraw(self, work: Work) -> bool:
        """Take queued work back before it is written; False if the writer already has it."""
        for index, queued in enumerate(self._work):
            if queued is work:  # by identity: equal works are still distinct pings
                del self._work[index]
                return True
        return False

    async def drained(self) -> None:
        """Wait until everything submitted so far is committed."""
        self._urgent.set()
        await self._idle.wait()

    async def run(self) -> None:
        while True:
            if time.monotonic() - self._last_tick >= TICK_S:
                self._last_tick = time.monotonic()
                self._tick_due = True
            if not self._results and not self._work and not self._tick_due:
                if self._stopping:
                    await self.flush()
                    self._idle.set()
                    return
                self._idle.set()
                now = time.monotonic()
                timeout = max(
                    0.0,
                    min(self._last_flush + self.flush_interval_s, self._last_tick + TICK_S) - now,
                )
                woken = await wait_event(self._wake, timeout)
                if not woken and time.monotonic() - self._last_flush >= self.flush_interval_s:
                    await self.flush()
                self._wake.clear()
                continue
            if self._results or self._work:
                await self._linger()
            await self._write_next()
            if time.monotonic() - self._last_flush >= self.flush_interval_s:
                await self.flush()

    async def stop(self) -> None:
        """Write everything queued and flush, then let run() return."""
        self._stopping = True
        self._urgent.set()
        self._wake.set()

    async def _linger(self) -> None:
        """Let a few probe results gather before a transaction, unless someone is waiting.

        At 10,000 monitors every 60 s a transaction per result cost 40 % of a core; waiting up
        to LINGER_S for company costs nothing anyone sees (pings and drains do not wait).
        """
        if self._work or self._urgent.is_set():
            self._urgent.clear()
            return
        remaining = self._oldest + LINGER_S - time.monotonic()
        if remaining > 0:
            await wait_event(self._urgent, remaining)
        self._urgent.clear()

    async def flush(self) -> None:
        """Write what is kept in memory: latest location states and hourly rollups."""
        self._last_flush = time.monotonic()
        keys, self._touched = self._touched, set()
        snapshots = [s for key in keys if (s := self.evaluator.snapshot(*key)) is not None]
        rollups = self.rollups.take_dirty()
        beats, self._heartbeats = self._heartbeats, {}
        if not snapshots and not rollups and not beats:
            return
        try:
            async with self.db.begin() as conn:
                await state_store.save_locations(self.db, conn, snapshots)
                await rollup_store.save_rollups(self.db, conn, rollups)
                await heartbeat_store.save_last(conn, beats.values())
        except _RETRYABLE as error:
            log.warning("flushing states and rollups failed, will retry: %s", error)
            self._touched |= keys
            self._heartbeats = {**beats, **self._heartbeats}
            return
        self.rollups.flushed(rollups, self.clock.now_ms())

    async def _write_next(self) -> None:
        trusted: list[Result] = []
        while self._results and len(trusted) < self.max_batch:
            trusted.append(self._results.popleft())
        works: list[Work] = []
        size = len(trusted)
        while self._work and size < self.max_batch:
            work = self._work.popleft()
            works.append(work)
            size += len(work.results) + len(work.pings)
        try:
            await self._commit(trusted, works, size)
        except _Unwritten as unwritten:
            agents = [w for w in works if w.source is not None]
            if not agents or (len(works) == 1 and not trusted):
                self._fail(works, unwritten.error)
                return
            log.warning(
                "writing a batch with %d agent batch(es) failed (%s): writing them apart",
                len(agents),
                unwritten.error,
            )
            rest = [w for w in works if w.source is None]
            groups = [(trusted, rest), *(([], [w]) for w in agents)]
            for group_trusted, group in groups:
                if not group_trusted and not group:
                    continue
                try:
                    await self._commit(group_trusted, group, len(group_trusted))
                except _Unwritten as again:
                    self._fail(group, again.error)
                except Exception as error:
                    self._fail(group, error)
        except Exception as error:
            self._fail(works, error)

    async def _commit(self, trusted: list[Result], works: list[Work], size: int) -> None:
        started = time.perf_counter()
        evaluation = await self._write(trusted, works)
        self.metrics.batch_seconds.observe(time.perf_counter() - started)
        self.metrics.batch_size.observe(size)
        for work in works:
            if work.done is not None and not work.done.done():
                work.done.set_result(evaluation)
        for listener in self.listeners:
            listener(evaluation)

    def _fail(self, works: list[Work], error: BaseException) -> None:
        """Fail the waiters rather than hang them; an agent's batch written alone is refused."""
        alone = len(works) == 1 and works[0].source is not None
        if alone:
            log.warning("refused a batch from probe %s: %s", works[0].source, error)
        else:
            log.error("writing a batch failed", exc_info=error)
        for work in works:
            if work.done is not None and not work.done.done():
                if alone:
                    work.done.set_exception(RefusedWork(f"the batch cannot be stored: {error}"))
                else:
                    work.done.set_exception(error)

    async def _write(self, trusted: list[Result], works: list[Work]) -> Evaluation:
        evaluation: Evaluation | None = None
        delay = 0.1
        while True:
            try:
                async with self.db.begin() as conn:
                    candidates = list(trusted)
                    for work in works:
                        candidates.extend(work.results)
                    new_ids = await result_store.insert_results(self.db, conn, candidates)
                    fresh: list[Result] = []
                    for result in candidates:
                        if result.id in new_ids:  # each new id once, even if sent twice
                            new_ids.discard(result.id)
                            fresh.append(result)
                    taken = {r.id for r in fresh}
                    for work in works:
                        work.fresh = sum(1 for r in work.results if r.id in taken)
                    await heartbeat_store.insert_pings(
                        self.db, conn, [p for w in works for p in w.pings]
                    )
                    now = self.clock.now_ms()
                    await probe_store.insert_gaps(conn, [g for w in works for g in w.gaps], now)
                    await probe_store.save_probes(
                        self.db, conn, [p for w in works for p in w.probes], now
                    )
                    if evaluation is None:
                        missing = self.rollups.missing(fresh)
                        if missing:
                            self.rollups.load(
                                missing, await rollup_store.load_rollups(conn, missing)
                            )
                        histories = {}
                        for (monitor, location), late_at in self.evaluator.late_points(
                            fresh
                        ).items():
                            histories[(monitor, location)] = await result_store.history_from(
                                conn, monitor, location, late_at
                            )
                        evaluation = self.evaluator.evaluate(fresh, histories, now)
                        if self._tick_due:
                            self._tick_due = False
                            evaluation.merge(self.evaluator.tick(now))
                        evaluation.events.extend(e for w in works for e in w.events)
                        if self.mark_events is not None:
                            evaluation.events[:] = self.mark_events(evaluation.events, now)
                    await self._write_outcome(conn, evaluation)
                break
            except Exception as error:
                if not _transient(error):
                    if evaluation is None:  # nothing evaluated yet: the inputs can be split
                        raise _Unwritten(error) from error
                    raise
                self.metrics.write_errors.inc()
                log.warning(
                    "writing %d results failed, retrying in %.1fs: %s", len(trusted), delay, error
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
        self.rollups.add(evaluation.accepted)
        for work in works:
            for row in work.heartbeats:
                self._heartbeats[row.monitor] = row
        self._touched |= evaluation.touched
        self._touched.difference_update(evaluation.locations)
        self.metrics.stored.inc(len(evaluation.accepted))
        for result, reason in evaluation.rejected:
            self.metrics.rejected.labels(reason).inc()
            log.debug("result %s not evaluated: %s", result.id, reason)
        return evaluation

    async def _write_outcome(self, conn: AsyncConnection, evaluation: Evaluation) -> None:
        now: Millis = self.clock.now_ms()
        snapshots: list[LocationSnapshot] = list(evaluation.locations.values())
        await state_store.save_locations(self.db, conn, snapshots)
        await state_store.save_statuses(self.db, conn, evaluation.statuses.values(), now)
        await outage_store.save_outages(self.db, conn, evaluation.outages.values(), now)
        await outage_store.delete_outages(conn, evaluation.removed_outages)
        await outbox_store.append_events(conn, evaluation.events, now)
