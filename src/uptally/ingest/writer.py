"""The writer: batches of results (and pings) → stored rows, evaluation, outages and events.

Everything that matters is written in one transaction per batch, so an event exists exactly when
the state change that caused it does. Batching is natural group commit: while one transaction
is written the next batch accumulates — no artificial delay at low load, large batches at high
load.

When a write fails (a full disk, a database that is gone) nothing waits for it: the batch is
evaluated in memory all the same, its outcome (states, outages, events) and results are *held*,
its events are delivered from memory (see UnstoredEvents), and the held backlog is written with
backoff, in order, in one transaction, until it succeeds. Later batches are held too until then.
The evaluator is never fed twice. Held raw results are capped at `max_held` (oldest dropped and
counted); what they changed is kept.

An agent's batch is untrusted input (`Work.source` names its location): it is validated at the
API, and if a transaction that holds one fails on its data (not on an unreachable database),
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
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncConnection

from uptally.clock import Clock, Millis
from uptally.evaluator import Evaluation, Evaluator, LocationSnapshot
from uptally.events import Event
from uptally.ingest.rollup_book import RollupBook
from uptally.ingest.unstored import Unstored, UnstoredEvents
from uptally.ingest.write_health import WriteHealth
from uptally.metrics import Metrics
from uptally.results import Result
from uptally.store import deliveries as delivery_store
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

# Whatever a database that is full, gone or hung raises (a pool or connect deadline too).
_RETRYABLE = (OperationalError, DBAPIError, OSError, TimeoutError, PoolTimeout)


def _transient(error: BaseException) -> bool:
    """The database (full, unreachable, busy, hung), not the data: the same write may succeed
    later. A value the database refuses (out of range, NUL in text, …) fails the same forever."""
    if isinstance(error, OperationalError | InterfaceError | OSError | TimeoutError | PoolTimeout):
        return True
    return isinstance(error, DBAPIError) and error.connection_invalidated


LINGER_S = 0.1
TICK_S = 5.0
FIRST_RETRY_S = 0.1
MAX_RETRY_S = 10.0


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
    """A write failed on its data before anything was evaluated: its inputs may be written
    another way (apart)."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


class _WriteFailed(Exception):
    """A batch could not be written; what was evaluated before the failure, if anything."""

    def __init__(
        self, error: Exception, evaluation: Evaluation | None, fresh: list[Result]
    ) -> None:
        super().__init__(str(error))
        self.error = error
        self.evaluation = evaluation
        self.fresh = fresh


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
        max_held: int = 100_000,
    ) -> None:
        self.db = db
        self.evaluator = evaluator
        self.clock = clock
        self.metrics = metrics
        self.max_batch = max_batch
        self.max_queue = max_queue
        self.flush_interval_s = flush_interval_s
        self.max_held = max_held
        self.health = WriteHealth(clock, metrics)
        self.unstored = UnstoredEvents()  # events of held batches, delivered from memory
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
        # While writes fail: the merged outcome of held batches (None: nothing held), their
        # results (with whether each was accepted, for the rollups) and their inputs.
        self._held: Evaluation | None = None
        self._held_results: deque[tuple[Result, bool]] = deque()
        self._held_ids: set[str] = set()
        self._held_works: list[Work] = []
        self._held_dropped = 0  # in this episode
        self._storing: asyncio.Task[None] | None = None
        self._retry_at = 0.0
        self._retry_s = FIRST_RETRY_S

    @property
    def pending(self) -> int:
        queued = len(self._results) + sum(len(w.results) + len(w.pings) for w in self._work)
        return queued + len(self._held_results) + sum(len(w.pings) for w in self._held_works)

    @property
    def holding(self) -> bool:
        """Batches are evaluated but not written yet (database writes fail)."""
        return self._held is not None

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
            self._store_held_when_due()
            if not self._results and not self._work and not self._tick_due:
                if self._stopping and self._held is None:
                    await self.flush()
                    self._idle.set()
                    return
                if self._held is None:
                    self._idle.set()
                now = time.monotonic()
                timeout = max(
                    0.0,
                    min(self._last_flush + self.flush_interval_s, self._last_tick + TICK_S) - now,
                )
                if self._held is not None and self._storing is None:
                    timeout = min(timeout, max(0.01, self._retry_at - now))
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
        if self._held is not None:
            return  # the held batches carry older states: they are written first
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
            if not self.health.failing:
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
            evaluation = await self._write_or_hold(trusted, works, size)
        except _Unwritten as unwritten:
            apart = await self._write_apart(trusted, works, unwritten.error)
            if apart is None:
                return
            evaluation = apart
        except Exception as error:  # a bug: fail the waiters rather than hang them
            self._fail(works, error)
            return
        for listener in self.listeners:
            listener(evaluation)

    async def _write_or_hold(
        self, trusted: list[Result], works: list[Work], size: int
    ) -> Evaluation:
        """Write a batch, or hold it while writes fail; _Unwritten if its data was refused."""
        if self._held is not None:  # writes fail: no batch overtakes the held ones
            return await self._hold(trusted, works, None, [])
        started = time.perf_counter()
        try:
            evaluation = await self._write(trusted, works)
        except _WriteFailed as failed:
            self.metrics.write_errors.inc()
            self.health.failed(failed.error)
            return await self._hold(trusted, works, failed.evaluation, failed.fresh)
        self.metrics.batch_seconds.observe(time.perf_counter() - started)
        self.metrics.batch_size.observe(size)
        for work in works:
            if work.done is not None and not work.done.done():
                work.done.set_result(evaluation)
        return evaluation

    async def _write_apart(
        self, trusted: list[Result], works: list[Work], error: BaseException
    ) -> Evaluation | None:
        """The database refused a batch's data: write the hub's own work, then each agent's
        batch alone, so that a bad batch costs only itself. None when nothing was written."""
        agents = [w for w in works if w.source is not None]
        if not agents or (len(works) == 1 and not trusted):
            self._fail(works, error)
            return None
        log.warning(
            "writing a batch with %d agent batch(es) failed (%s): writing them apart",
            len(agents),
            error,
        )
        rest = [w for w in works if w.source is None]
        merged: Evaluation | None = None
        for group_trusted, group in [(trusted, rest), *(([], [w]) for w in agents)]:
            if not group_trusted and not group:
                continue
            size = len(group_trusted) + sum(len(w.results) + len(w.pings) for w in group)
            try:
                evaluation = await self._write_or_hold(group_trusted, group, size)
            except _Unwritten as again:
                self._fail(group, again.error)
                continue
            except Exception as again:
                self._fail(group, again)
                continue
            merged = merged or Evaluation()
            merged.merge(evaluation)
        return merged

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
        """One attempt; _WriteFailed carries what was evaluated before a failure."""
        evaluation: Evaluation | None = None
        fresh: list[Result] = []
        try:
            async with self.db.begin() as conn:
                candidates = list(trusted)
                for work in works:
                    candidates.extend(work.results)
                new_ids = await result_store.insert_results(self.db, conn, candidates)
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
                await self._load_rollups(conn, fresh)
                late = self.evaluator.late_points(fresh)
                histories = await self._histories(conn, late) if late else {}
                evaluation = self._evaluate(fresh, works, histories, now)
                await self._write_outcome(conn, evaluation)
        except Exception as error:
            if _transient(error):
                raise _WriteFailed(error, evaluation, fresh) from error
            if evaluation is None:  # nothing evaluated yet: the inputs can be written apart
                raise _Unwritten(error) from error
            raise
        self._committed(evaluation.accepted, evaluation, works)
        self._count_rejected(evaluation)
        return evaluation

    def _evaluate(
        self,
        fresh: list[Result],
        works: list[Work],
        histories: dict[tuple[str, str], tuple[Millis | None, list[Result]]],
        now: Millis,
    ) -> Evaluation:
        evaluation = self.evaluator.evaluate(fresh, histories, now)
        if self._tick_due:
            self._tick_due = False
            evaluation.merge(self.evaluator.tick(now))
        evaluation.events.extend(e for w in works for e in w.events)
        if self.mark_events is not None:
            evaluation.events[:] = self.mark_events(evaluation.events, now)
        return evaluation

    async def _load_rollups(self, conn: AsyncConnection, results: list[Result]) -> None:
        missing = self.rollups.missing(results)
        if missing:
            self.rollups.load(missing, await rollup_store.load_rollups(conn, missing))

    async def _histories(
        self, conn: AsyncConnection, late: dict[tuple[str, str], Millis]
    ) -> dict[tuple[str, str], tuple[Millis | None, list[Result]]]:
        """Stored results from each late point's reset on, with the held ones (not stored yet)."""
        histories = {}
        for (monitor, location), late_at in late.items():
            reset, stored = await result_store.history_from(conn, monitor, location, late_at)
            known = {r.id for r in stored}
            stored.extend(
                r
                for r, _ in self._held_results
                if r.monitor == monitor
                and r.location == location
                and (reset is None or r.at >= reset)
                and r.id not in known
            )
            stored.sort(key=lambda r: r.at)
            histories[(monitor, location)] = (reset, stored)
        return histories

    def _committed(self, accepted: list[Result], evaluation: Evaluation, works: list[Work]) -> None:
        """What follows a commit: rollups, lazily written state, counts."""
        self.rollups.add(accepted)
        for work in works:
            for row in work.heartbeats:
                self._heartbeats[row.monitor] = row
        self._touched |= evaluation.touched
        self._touched.difference_update(evaluation.locations)
        self.metrics.stored.inc(len(accepted))

    def _count_rejected(self, evaluation: Evaluation) -> None:
        for result, reason in evaluation.rejected:
            self.metrics.rejected.labels(reason).inc()
            log.debug("result %s not evaluated: %s", result.id, reason)

    # -- while writes fail ---------------------------------------------------------------------

    async def _hold(
        self,
        trusted: list[Result],
        works: list[Work],
        evaluation: Evaluation | None,
        fresh: list[Result],
    ) -> Evaluation:
        """Evaluate a batch that cannot be written (unless that was done before the write
        failed), hold its outcome for a later write and hand its events to memory delivery."""
        now = self.clock.now_ms()
        if evaluation is None:
            fresh = []
            for result in [*trusted, *(r for w in works for r in w.results)]:
                if result.id not in self._held_ids:  # replays of held results: once
                    self._held_ids.add(result.id)
                    fresh.append(result)
            taken = {r.id for r in fresh}
            for work in works:
                work.fresh = sum(1 for r in work.results if r.id in taken)
            late = self.evaluator.late_points(fresh)
            histories = {}
            if late:
                try:
                    async with self.db.connect() as conn:
                        histories = await self._histories(conn, late)
                except _RETRYABLE:
                    histories = {}  # cannot read either: late results are rejected
            evaluation = self._evaluate(fresh, works, histories, now)
        self._count_rejected(evaluation)
        accepted = {r.id for r in evaluation.accepted}
        for result in fresh:
            self._held_ids.add(result.id)
            self._held_results.append((result, result.id in accepted))
        while len(self._held_results) > self.max_held:
            dropped, _ = self._held_results.popleft()
            self._held_ids.discard(dropped.id)
            self.metrics.dropped.inc()
            if not self._held_dropped:
                log.warning(
                    "more than %d results held while database writes fail: dropping the oldest "
                    "raw results (the states, outages and events they caused are kept)",
                    self.max_held,
                )
            self._held_dropped += 1
        for work in works:
            work.results = []  # held once, in _held_results
        self._held_works.extend(works)
        outcome = Evaluation(
            locations=evaluation.locations,
            touched=evaluation.touched,
            statuses=evaluation.statuses,
            outages=evaluation.outages,
            removed_outages=evaluation.removed_outages,
            events=evaluation.events,
        )
        if self._held is None:
            self._held = Evaluation()
            self._retry_at = time.monotonic() + self._retry_s
        self._held.merge(outcome)
        self.unstored.add(evaluation.events, now)
        self.metrics.store_held.set(len(self._held_results))
        return evaluation

    def _store_held_when_due(self) -> None:
        if self._held is None or self._storing is not None:
            return
        if time.monotonic() < self._retry_at:
            return
        self._storing = asyncio.get_running_loop().create_task(
            self._store_held(), name="ingest-held"
        )
        self._storing.add_done_callback(self._stored)

    def _stored(self, _task: asyncio.Task[None]) -> None:
        self._storing = None
        self._wake.set()

    async def _store_held(self) -> None:
        """Write everything held in one transaction (in order, after what was held before);
        on failure put it back in front and try again later."""
        assert self._held is not None
        outcome, entries, works = self._held, self._held_results, self._held_works
        self._held, self._held_results, self._held_works = Evaluation(), deque(), []
        claimed = await self.unstored.claim([e.id for e in outcome.events])
        accepted = [r for r, ok in entries if ok]
        try:
            async with self.db.begin() as conn:
                now = self.clock.now_ms()
                await result_store.insert_results(self.db, conn, [r for r, _ in entries])
                await heartbeat_store.insert_pings(
                    self.db, conn, [p for w in works for p in w.pings]
                )
                await probe_store.insert_gaps(conn, [g for w in works for g in w.gaps], now)
                await probe_store.save_probes(
                    self.db, conn, [p for w in works for p in w.probes], now
                )
                await self._load_rollups(conn, accepted)
                await self._write_outcome(conn, outcome)
                await delivery_store.add_sent(self.db, conn, _sent(claimed), now)
        except Exception as error:
            if not isinstance(error, _RETRYABLE):
                log.exception("writing the held batches failed")
            self.metrics.write_errors.inc()
            self.health.failed(error)
            outcome.merge(self._held)
            entries.extend(self._held_results)
            self._held, self._held_results = outcome, entries
            self._held_works = works + self._held_works
            self.unstored.released(claimed)
            self._retry_s = min(self._retry_s * 2, MAX_RETRY_S)
            self._retry_at = time.monotonic() + self._retry_s
            return
        self.unstored.stored(claimed)
        self._committed(accepted, outcome, works)
        for result, _ in entries:
            self._held_ids.discard(result.id)
        for work in works:
            if work.done is not None and not work.done.done():
                work.done.set_result(outcome)
        if _empty(self._held) and not self._held_results and not self._held_works:
            self._held = None
            self._retry_s = FIRST_RETRY_S
            dropped, self._held_dropped = self._held_dropped, 0
            self.health.recovered(
                f"{len(entries)} results, {len(outcome.outages)} outages, "
                f"{len(outcome.events)} events"
                + (f" ({dropped} results dropped)" if dropped else "")
            )
        self._retry_at = time.monotonic()  # what was held meanwhile goes next
        self.metrics.store_held.set(len(self._held_results))

    async def _write_outcome(self, conn: AsyncConnection, evaluation: Evaluation) -> None:
        now: Millis = self.clock.now_ms()
        snapshots: list[LocationSnapshot] = list(evaluation.locations.values())
        await state_store.save_locations(self.db, conn, snapshots)
        await state_store.save_statuses(self.db, conn, evaluation.statuses.values(), now)
        await outage_store.save_outages(self.db, conn, evaluation.outages.values(), now)
        await outage_store.delete_outages(conn, evaluation.removed_outages)
        await outbox_store.append_events(conn, evaluation.events, now)


def _empty(evaluation: Evaluation) -> bool:
    return not (
        evaluation.locations
        or evaluation.statuses
        or evaluation.outages
        or evaluation.removed_outages
        or evaluation.events
        or evaluation.touched
    )


def _sent(claimed: list[Unstored]) -> list[delivery_store.Sent]:
    """Deliveries tried from memory, as they are to be recorded with their events."""
    sent: list[delivery_store.Sent] = []
    for unstored in claimed:
        for target, attempts in unstored.attempts.items():
            finished = unstored.finished.get(target)
            sent.append(
                delivery_store.Sent(
                    unstored.deliveries[target],
                    unstored.event.id,
                    target,
                    unstored.event.kind.value,
                    unstored.created_at,
                    finished.state if finished else delivery_store.PENDING,
                    tuple(attempts),
                )
            )
    return sent
