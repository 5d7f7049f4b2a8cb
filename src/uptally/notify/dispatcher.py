"""The dispatcher: each target's queue delivered in order, retried with backoff, independently.

An instance leases a target's queue (see uptally.store.deliveries) and a worker delivers its
pending deliveries oldest first. A transient failure stops that queue until its backoff has
passed (later deliveries wait, so the order holds); a permanent one gives that delivery up and
the queue goes on. Every attempt is recorded. A crash between a send and its record means the
delivery is sent again later with the same delivery id (receivers deduplicate by it).
"""

from __future__ import annotations

import asyncio
import logging
import os
import secrets
import socket
import time
from collections.abc import Callable

import aiohttp

from uptally.clock import Clock, Millis
from uptally.config.schema import Config, Retry
from uptally.metrics import Metrics
from uptally.netguard import Guard, http_session
from uptally.notify.backoff import delay_ms
from uptally.notify.operator import timely_shares
from uptally.notify.recorder import Recorder
from uptally.notify.render import render
from uptally.notify.targets import Resolver, Unavailable, label
from uptally.notify.transport import DeliveryError, Outgoing, Transport
from uptally.secrets import Keyring
from uptally.store import deliveries as store
from uptally.store.database import Database
from uptally.waiting import wait_event

log = logging.getLogger(__name__)

PAGE = 200  # deliveries of one queue fetched at a time
# An emptied queue is kept this long, waiting for more (its lease renewed), so a steady trickle
# of events does not lease and release it for each one.
IDLE_S = 1.0
STATS_EVERY_S = 15.0
PRUNE_EVERY_S = 3600.0


class Dispatcher:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        metrics: Metrics,
        config: Callable[[], Config],
        keyring: Callable[[], Keyring | None],
        *,
        owner: str | None = None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.metrics = metrics
        self.config = config
        self.owner = owner or f"{socket.gethostname()[:32]}:{os.getpid()}:{secrets.token_hex(4)}"
        self.recorder = Recorder(db)
        self.resolver = Resolver(db, config, keyring, self._http, clock.now_ms)
        self.workers: dict[str, asyncio.Task[None]] = {}
        self._more: dict[str, asyncio.Event] = {}  # a running worker's queue got new work
        self.on_idle: Callable[[], None] = lambda: None  # a worker finished: look again
        # one session per guard: a connection kept alive for a trusted target must never
        # serve a guarded one
        self._sessions: dict[Guard | None, aiohttp.ClientSession] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False
        self._stopped = asyncio.Event()
        self._last_stats = 0.0
        self._last_prune = time.monotonic()

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._tasks = [
            loop.create_task(self.recorder.run(), name="delivery-recorder"),
            loop.create_task(self._keep_leases(), name="delivery-leases"),
        ]

    async def stop(self) -> None:
        """Let running sends finish (briefly), record them, give up the leases."""
        self._stopping = True
        for more in self._more.values():
            more.set()  # idle workers: stop waiting
        if self.workers:
            _done, late = await asyncio.wait(list(self.workers.values()), timeout=5)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        self.recorder.close()
        self._stopped.set()  # the lease keeper returns
        if self._tasks:
            _finished, late = await asyncio.wait(self._tasks, timeout=10)
            if late:
                log.warning("delivery attempts left unrecorded at shutdown (they will repeat)")
            for task in late:
                task.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
        try:
            async with self.db.begin() as conn:
                await store.release_all(conn, self.owner)
        except Exception as error:
            log.warning("releasing delivery leases failed (they expire by themselves): %s", error)
        sessions, self._sessions = self._sessions, {}
        for session in sessions.values():
            await session.close()

    def nudge(self, targets: set[str]) -> None:
        """New deliveries were queued for these targets (those being delivered here look now)."""
        for target in targets:
            more = self._more.get(target)
            if more is not None:
                more.set()

    def _http(self, guard: Guard | None) -> aiohttp.ClientSession:
        session = self._sessions.get(guard)
        if session is None:
            session = self._sessions[guard] = http_session(guard)
        return session

    # -- scheduling ------------------------------------------------------------------------

    async def schedule(self) -> int:
        """Lease due queues up to the worker limit and start delivering them."""
        if self._stopping:
            return 0
        settings = self.config().notifications
        room = settings.workers - len(self.workers)
        if room <= 0:
            return 0
        now = self.clock.now_ms()
        async with self.db.begin() as conn:
            claimed = await store.claim_queues(
                self.db, conn, self.owner, now, settings.lease, room, exclude=self.workers
            )
        for target in claimed:
            task = asyncio.get_running_loop().create_task(
                self._deliver_queue(target), name=f"deliver {target}"
            )
            self.workers[target] = task
            self._more[target] = asyncio.Event()
        await self._upkeep(now)
        return len(claimed)

    async def _keep_leases(self) -> None:
        while not self._stopped.is_set():
            lease = self.config().notifications.lease
            if await wait_event(self._stopped, lease / 3000):
                return
            if self.workers:
                try:
                    async with self.db.begin() as conn:
                        until = self.clock.now_ms() + lease
                        await store.renew_leases(conn, self.owner, list(self.workers), until)
                except Exception as error:
                    log.warning("renewing delivery leases failed: %s", error)

    # -- delivering one queue ----------------------------------------------------------------

    async def _deliver_queue(self, target: str) -> None:
        next_at: Millis | None = None
        error_text: str | None = None
        failing_since: Millis | None = None
        try:
            async with self.db.connect() as conn:
                failing_since, _ = await store.queue_state(conn, target)
            idle = False
            while not self._stopping:
                more = self._more[target]
                more.clear()
                async with self.db.connect() as conn:
                    page = await store.next_pending(conn, target, PAGE)
                if not page:
                    failing_since = None
                    if idle:
                        return
                    # Wait a little for more; then one more look (another instance may have
                    # queued some) before giving the queue up.
                    await wait_event(more, IDLE_S)
                    idle = not more.is_set()
                    continue
                idle = False
                # resolved for each page: a changed secret or signing applies at once
                transport = await self._transport(target)
                if transport is None:
                    return
                last: asyncio.Future[None] | None = None
                for item in page:
                    if self._stopping:
                        break
                    attempt, retry_in = await self.attempt(transport, item)
                    last = self.recorder.add(attempt)
                    if retry_in is not None:
                        next_at = self.clock.now_ms() + retry_in
                        error_text = attempt.error
                        failing_since = failing_since or attempt.at
                        await last
                        return
                    failing_since = None if attempt.outcome == "delivered" else failing_since
                if last is not None:
                    await last
        except asyncio.CancelledError:
            raise
        except Exception as error:
            log.exception("delivering %s failed", target)
            error_text = f"internal error: {error}"
            next_at = self.clock.now_ms() + delay_ms(1, self.config().notifications.retry)
        finally:
            await self._release(target, next_at, failing_since, error_text)
            self.workers.pop(target, None)
            self._more.pop(target, None)
            self.on_idle()

    async def _transport(self, target: str) -> Transport | None:
        """The target's transport now; None once its queue was given up (it is gone)."""
        try:
            return await self.resolver.resolve(target)
        except Unavailable as unavailable:
            if unavailable.permanent:  # e.g. the channel was removed: give its queue up
                async with self.db.begin() as conn:
                    gone = await store.cancel_pending(conn, target, str(unavailable))
                self.metrics.deliveries.labels(label(target), "failed").inc(gone)
                return None
            # e.g. a secret is missing: each delivery fails like an attempt (recorded,
            # backing off, given up in the end) until someone fixes it
            return _Unreachable(str(unavailable))

    async def _release(
        self, target: str, next_at: Millis | None, failing_since: Millis | None, error: str | None
    ) -> None:
        try:
            async with self.db.begin() as conn:
                await store.release_queue(
                    conn,
                    target,
                    self.owner,
                    next_at=next_at if next_at is not None else self.clock.now_ms(),
                    failing_since=failing_since,
                    last_error=error,
                )
        except Exception as problem:
            log.warning("releasing the queue of %s failed (the lease expires): %s", target, problem)

    async def attempt(
        self, transport: Transport, item: store.Pending
    ) -> tuple[store.Attempt, int | None]:
        """One send; the attempt to record and, for a transient failure, when to retry."""
        config = self.config()
        settings = config.notifications
        name = label(item.target)
        outgoing = Outgoing(
            item.id,
            item.event,
            item.kind,
            item.at,
            item.subject,
            item.data,
            render(item.kind, item.subject, item.data, config),
        )
        at = self.clock.now_ms()
        started = time.perf_counter()
        status: int | None = None
        try:
            status = await transport.send(outgoing)
        except DeliveryError as error:
            took = (time.perf_counter() - started) * 1000
            return self._failed(item, at, took, error, settings.retry)
        except Exception as error:  # a transport bug must not stop the queue for good
            log.exception("sending delivery %s to %s failed", item.id, item.target)
            took = (time.perf_counter() - started) * 1000
            problem = DeliveryError(f"internal error: {type(error).__name__}: {error}")
            return self._failed(item, at, took, problem, settings.retry)
        took = (time.perf_counter() - started) * 1000
        done = self.clock.now_ms()
        self.metrics.delivery_attempts.labels(name, "delivered").inc()
        self.metrics.deliveries.labels(name, "delivered").inc()
        self.metrics.delivery_latency.observe(max(0, done - item.created_at) / 1000)
        return store.Attempt(item.id, done, took, "delivered", status, None, store.DELIVERED), None

    def _failed(
        self, item: store.Pending, at: Millis, took: float, error: DeliveryError, retry: Retry
    ) -> tuple[store.Attempt, int | None]:
        name = label(item.target)
        text = str(error)[:500]
        if error.permanent:
            self.metrics.delivery_attempts.labels(name, "permanent").inc()
            self.metrics.deliveries.labels(name, "failed").inc()
            log.warning("delivery %s to %s failed for good: %s", item.id, item.target, text)
            attempt = store.Attempt(
                item.id, at, took, "permanent", error.status, text, store.FAILED
            )
            return attempt, None
        self.metrics.delivery_attempts.labels(name, "transient").inc()
        if at - item.created_at >= retry.give_up_after:
            self.metrics.deliveries.labels(name, "failed").inc()
            log.warning("gave up delivery %s to %s: %s", item.id, item.target, text)
            text = f"gave up after {item.attempts + 1} attempts: {text}"
            attempt = store.Attempt(
                item.id, at, took, "transient", error.status, text, store.FAILED
            )
            return attempt, None
        retry_after = None if error.retry_after_s is None else int(error.retry_after_s * 1000)
        wait = delay_ms(item.attempts + 1, retry, retry_after)
        attempt = store.Attempt(item.id, at, took, "transient", error.status, text, store.PENDING)
        return attempt, wait

    # -- upkeep ------------------------------------------------------------------------------

    async def _upkeep(self, now: Millis) -> None:
        """Refresh the per-channel gauges now and then; forget old deliveries hourly."""
        if time.monotonic() - self._last_stats >= STATS_EVERY_S:
            self._last_stats = time.monotonic()
            try:
                await self.refresh_stats(now)
            except Exception as error:
                log.warning("delivery statistics failed: %s", error)
        if time.monotonic() - self._last_prune >= PRUNE_EVERY_S:
            self._last_prune = time.monotonic()
            try:
                async with self.db.begin() as conn:
                    await store.prune(conn, now - self.config().notifications.retention)
            except Exception as error:
                log.warning("pruning old deliveries failed: %s", error)

    async def refresh_stats(self, now: Millis) -> None:
        async with self.db.connect() as conn:
            pending = await store.pending_counts(conn)
            timely = await timely_shares(conn, now)
        names = {label("channel:" + c.id) for c in self.config().notifications.channels}
        waiting: dict[str, int] = dict.fromkeys(names, 0)
        for target, count in pending.items():
            waiting[label(target)] = waiting.get(label(target), 0) + count
        shares: dict[str, list[int]] = {}
        for target, (on_time, late) in timely.items():
            share = shares.setdefault(label(target), [0, 0])
            share[0] += on_time
            share[1] += late
        self.metrics.deliveries_pending.clear()
        for name, count in waiting.items():
            self.metrics.deliveries_pending.labels(name).set(count)
        self.metrics.deliveries_within_1h.clear()
        for name, (on_time, late) in shares.items():
            if on_time + late:
                self.metrics.deliveries_within_1h.labels(name).set(on_time / (on_time + late))


class _Unreachable:
    """A target that cannot be resolved for now: every send fails, transiently."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    async def send(self, outgoing: Outgoing) -> int | None:
        raise DeliveryError(self.reason)
