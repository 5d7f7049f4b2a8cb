"""The one writer: batches of results (and pings) → stored rows, evaluation, outages and events.

Everything a batch changes is written in one transaction, so an event exists exactly when the
state change that caused it does. Batching is natural group commit: while one transaction is
being written the next batch accumulates, so there is no artificial delay at low load and
large batches at high load. A failed write is retried with the same evaluation (the evaluator
is not fed twice) until it succeeds or the process stops.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field

from sqlalchemy.exc import DBAPIError, OperationalError

from uptally.clock import Clock, Millis
from uptally.evaluator import Evaluation, Evaluator
from uptally.metrics import Metrics
from uptally.results import Result
from uptally.store import heartbeats as heartbeat_store
from uptally.store import outages as outage_store
from uptally.store import outbox as outbox_store
from uptally.store import results as result_store
from uptally.store import rollups as rollup_store
from uptally.store import states as state_store
from uptally.store.database import Database
from uptally.store.heartbeats import HeartbeatRow, Ping
from uptally.store.rollups import HOUR_MS, Rollup

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Work:
    """Inputs that must be written together; `done` resolves once they are committed."""

    results: list[Result] = field(default_factory=list)
    pings: list[Ping] = field(default_factory=list)
    heartbeats: list[HeartbeatRow] = field(default_factory=list)
    dedupe: bool = False  # results may have been stored before (agent replays)
    done: asyncio.Future[Evaluation] | None = None


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
    ) -> None:
        self.db = db
        self.evaluator = evaluator
        self.clock = clock
        self.metrics = metrics
        self.max_batch = max_batch
        self.max_queue = max_queue
        self._results: deque[Result] = deque()  # trusted fresh results (embedded probe)
        self._work: deque[Work] = deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._stopping = False
        self._rollups: dict[tuple[str, str, Millis], Rollup] = {}
        self._hour: Millis = 0
        self.listeners: list[Callable[[Evaluation], None]] = []

    @property
    def pending(self) -> int:
        return len(self._results) + sum(len(w.results) + len(w.pings) for w in self._work)

    def submit(self, result: Result) -> None:
        """Queue a fresh result for writing (never blocks)."""
        if len(self._results) >= self.max_queue:
            self._results.popleft()
            self.metrics.dropped.inc()
        self._results.append(result)
        self._idle.clear()
        self._wake.set()

    def submit_work(self, work: Work) -> asyncio.Future[Evaluation]:
        """Queue inputs that are written together; await the future for the commit."""
        loop = asyncio.get_running_loop()
        work.done = loop.create_future()
        self._work.append(work)
        self._idle.clear()
        self._wake.set()
        return work.done

    async def drained(self) -> None:
        """Wait until everything submitted so far is committed."""
        await self._idle.wait()

    async def run(self) -> None:
        while True:
            if not self._results and not self._work:
                self._idle.set()
                if self._stopping:
                    return
                await self._wake.wait()
                self._wake.clear()
                continue
            await self._write_next()

    async def stop(self) -> None:
        """Write everything queued, then let run() return."""
        self._stopping = True
        self._wake.set()

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
        self.metrics.queue_depth.set(self.pending)
        started = time.perf_counter()
        try:
            evaluation = await self._write(trusted, works)
        except Exception as error:  # a bug: fail the waiters rather than hang them
            log.exception("writing a batch failed")
            for work in works:
                if work.done is not None and not work.done.done():
                    work.done.set_exception(error)
            return
        self.metrics.batch_seconds.observe(time.perf_counter() - started)
        self.metrics.batch_size.observe(size)
        for work in works:
            if work.done is not None and not work.done.done():
                work.done.set_result(evaluation)
        for listener in self.listeners:
            listener(evaluation)

    async def _write(self, trusted: list[Result], works: list[Work]) -> Evaluation:
        evaluation: Evaluation | None = None
        rollups: list[Rollup] = []
        delay = 0.1
        while True:
            try:
                async with self.db.begin() as conn:
                    fresh = list(trusted)
                    for work in works:
                        if work.dedupe and work.results:
                            known = await result_store.existing_ids(
                                conn, [r.id for r in work.results]
                            )
                            fresh.extend(r for r in work.results if r.id not in known)
                        else:
                            fresh.extend(work.results)
                    await result_store.insert_results(self.db, conn, fresh)
                    pings = [p for work in works for p in work.pings]
                    await heartbeat_store.insert_pings(self.db, conn, pings)
                    await heartbeat_store.save_last(
                        conn, [h for work in works for h in work.heartbeats]
                    )
                    if evaluation is None:
                        histories = {}
                        for (monitor, location), late_at in self.evaluator.late_points(
                            fresh
                        ).items():
                            histories[(monitor, location)] = await result_store.history_from(
                                conn, monitor, location, late_at
                            )
                        evaluation = self.evaluator.evaluate(fresh, histories)
                    rollups = await self._merge_rollups(conn, evaluation.accepted)
                    now = self.clock.now_ms()
                    await rollup_store.save_rollups(self.db, conn, rollups)
                    await state_store.save_locations(self.db, conn, evaluation.locations.values())
                    await state_store.save_statuses(
                        self.db, conn, evaluation.statuses.values(), now
                    )
                    await outage_store.save_outages(self.db, conn, evaluation.outages.values(), now)
                    await outage_store.delete_outages(conn, evaluation.removed_outages)
                    await outbox_store.append_events(conn, evaluation.events, now)
                break
            except (OperationalError, DBAPIError, OSError) as error:
                self.metrics.write_errors.inc()
                log.warning(
                    "writing %d results failed, retrying in %.1fs: %s", len(trusted), delay, error
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
        for rollup in rollups:
            self._rollups[(rollup.monitor, rollup.location, rollup.hour)] = rollup
        self._evict_rollups()
        self.metrics.stored.inc(len(evaluation.accepted))
        for result, reason in evaluation.rejected:
            self.metrics.rejected.labels(reason).inc()
            log.debug("result %s not evaluated: %s", result.id, reason)
        for event in evaluation.events:
            self.metrics.events.labels(event.kind.value).inc()
        return evaluation

    async def _merge_rollups(self, conn: object, accepted: list[Result]) -> list[Rollup]:
        """Add the batch to the hourly rollups; returns the new values (cache updated on commit)."""
        deltas: dict[tuple[str, str, Millis], list[Result]] = {}
        for result in accepted:
            key = (result.monitor, result.location, result.at - result.at % HOUR_MS)
            deltas.setdefault(key, []).append(result)
        missing = [key for key in deltas if key not in self._rollups]
        loaded = {
            (r.monitor, r.location, r.hour): r
            for r in await rollup_store.load_rollups(conn, missing)  # type: ignore[arg-type]
        }
        merged = []
        for key, items in deltas.items():
            base = self._rollups.get(key) or loaded.get(key)
            rollup = (
                Rollup(key[0], key[1], key[2])
                if base is None
                else Rollup(
                    base.monitor,
                    base.location,
                    base.hour,
                    base.count,
                    base.failures,
                    base.latency_sum,
                    base.latency_max,
                    dict(base.histogram),
                )
            )
            for result in items:
                rollup.add(result.ok, result.latency_ms)
            merged.append(rollup)
        return merged

    def _evict_rollups(self) -> None:
        """Keep only the current hour in memory; older hours are read back if late data comes."""
        now = self.clock.now_ms()
        hour = now - now % HOUR_MS
        if hour != self._hour:
            self._hour = hour
            for key in [k for k in self._rollups if k[2] < hour]:
                del self._rollups[key]
