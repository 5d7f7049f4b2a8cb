"""When checks run: a heap of due times on a fixed grid per monitor, retries while failing, a cap.

`Plan` is the pure core (times are plain numbers in ms, injected by the caller); `Scheduler`
drives it on the event loop. Each monitor runs on its own grid `offset + k * interval`, where the
offset is a stable hash of its key: start-up is spread over the interval instead of bursting,
and runs never drift however long the process lives. While a monitor fails it is re-run every
`min(interval, retry)` ms (a retry never comes later than the regular check would); its first
success puts it back on its grid.
"""

from __future__ import annotations

import asyncio
import heapq
import logging
import zlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)


@dataclass(slots=True, eq=False)
class Entry:
    key: str
    interval: float
    retry: float
    offset: float
    failing: bool = False
    removed: bool = False
    running: bool = False
    off_grid: bool = False  # ran at once when made: its next run returns to its grid

    @property
    def retry_after(self) -> float:
        """How soon a failing monitor runs again: never later than its regular interval."""
        return min(self.interval, self.retry)


def spread_offset(key: str, interval: float) -> float:
    """A stable phase in [0, interval) for `key`, so that monitors spread over the interval."""
    return (zlib.crc32(key.encode()) / 0x1_0000_0000) * interval


def grid_at_or_after(entry: Entry, t: float) -> float:
    return t + ((entry.offset - t) % entry.interval)


class Plan:
    """The pure schedule: which monitors are due when."""

    def __init__(self) -> None:
        self._heap: list[tuple[float, int, Entry]] = []
        self._entries: dict[str, Entry] = {}
        self._seq = 0

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: str) -> bool:
        return key in self._entries

    def upsert(
        self,
        key: str,
        interval: float,
        retry: float,
        now: float,
        failed_at: float | None = None,
        start_within: float | None = None,
    ) -> None:
        """Schedule `key` (or apply new timings). `failed_at`: a new entry's last check failed
        then (before a restart): it is retried after `retry_after` from then, not from the grid.
        `start_within`: a new entry (made while running) runs within this long, at a stable
        point of it (many made at once are spread over it), then on its grid."""
        old = self._entries.get(key)
        if old is not None and old.interval == interval and old.retry == retry:
            return
        if old is not None:
            old.removed = True
        entry = Entry(key, interval, retry, spread_offset(key, interval))
        self._entries[key] = entry
        if old is not None and old.running:
            entry.running = True  # the old run's completion schedules the next one
            entry.failing = old.failing
            return
        if old is None and failed_at is not None:
            entry.failing = True
            self._push(entry, max(now, failed_at + entry.retry_after))
            return
        if old is None and start_within is not None:
            entry.off_grid = True
            self._push(entry, now + spread_offset(key, start_within))
            return
        self._push(entry, grid_at_or_after(entry, now))

    def remove(self, key: str) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None:
            entry.removed = True

    def scheduled(self) -> list[str]:
        return list(self._entries)

    def next_due(self) -> float | None:
        while self._heap and self._heap[0][2].removed:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: float, limit: int | None = None) -> list[tuple[Entry, float]]:
        due: list[tuple[Entry, float]] = []
        heap = self._heap
        while heap and heap[0][0] <= now and (limit is None or len(due) < limit):
            at, _, entry = heapq.heappop(heap)
            if entry.removed:
                continue
            entry.running = True
            due.append((entry, at))
        return due

    def completed(self, entry: Entry, ok: bool, due: float, now: float) -> float | None:
        """Record a finished run; return when the monitor runs next (None if it was removed)."""
        entry.running = False
        current = self._entries.get(entry.key)
        if current is None:
            return None
        if current is not entry:  # replaced while running: continue with the new settings
            entry, current.running = current, False
        if not ok:
            entry.failing = True
            next_at = now + entry.retry_after
        elif entry.failing:
            entry.failing = False
            next_at = grid_at_or_after(entry, now + entry.retry_after)
        elif entry.off_grid:  # its first run was at once: the next slot of its grid from here
            entry.off_grid = False
            next_at = grid_at_or_after(entry, due + entry.interval / 2)
        else:
            next_at = due + entry.interval
            if next_at <= now:  # overran: skip the missed slots rather than bursting
                next_at = grid_at_or_after(entry, now)
        self._push(entry, next_at)
        return next_at

    def _push(self, entry: Entry, at: float) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (at, self._seq, entry))


class Scheduler:
    """Runs `run(key) -> ok` for every monitor when due, at most `concurrency` at a time."""

    def __init__(
        self,
        run: Callable[[str], Awaitable[bool]],
        concurrency: int,
        on_lateness: Callable[[float], None] | None = None,
    ) -> None:
        self._run = run
        self.plan = Plan()
        self._slots = asyncio.Semaphore(concurrency)
        self._on_lateness = on_lateness
        self._wake = asyncio.Event()
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False

    @property
    def in_flight(self) -> int:
        return len(self._tasks)

    def __len__(self) -> int:
        return len(self.plan)

    def upsert(
        self,
        key: str,
        interval_ms: float,
        retry_ms: float,
        failed_ms_ago: float | None = None,
        start_within_ms: float | None = None,
    ) -> None:
        """Schedule `key`; `failed_ms_ago`: its last check (before a restart) failed this long
        ago, so it is retried on the failing schedule; `start_within_ms`: a new key runs within
        that long (see Plan.upsert)."""
        now = self._now()
        failed_at = None if failed_ms_ago is None else now - failed_ms_ago
        self.plan.upsert(key, interval_ms, retry_ms, now, failed_at, start_within_ms)
        self._wake.set()

    def remove(self, key: str) -> None:
        self.plan.remove(key)

    def scheduled(self) -> list[str]:
        return self.plan.scheduled()

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while not self._stopping:
            now = self._now()
            for entry, due in self.plan.pop_due(now):
                await self._slots.acquire()
                if self._stopping:
                    self._slots.release()
                    break
                if self._on_lateness is not None:
                    self._on_lateness(self._now() - due)
                task = loop.create_task(self._run_one(entry, due))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            self._arm(loop)
            await self._wake.wait()
            self._wake.clear()

    async def stop(self, drain_timeout: float = 15.0) -> None:
        """Start nothing new; wait up to `drain_timeout` s for running checks to report."""
        self._stopping = True
        self._wake.set()
        if self._timer is not None:
            self._timer.cancel()
        if self._tasks:
            _, pending = await asyncio.wait(set(self._tasks), timeout=drain_timeout)
            for task in pending:
                task.cancel()

    async def _run_one(self, entry: Entry, due: float) -> None:
        ok = False
        try:
            ok = await self._run(entry.key)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("running %s failed", entry.key)
        finally:
            self._slots.release()
        next_at = self.plan.completed(entry, ok, due, self._now())
        if next_at is not None and (self._timer_at is None or next_at < self._timer_at):
            self._wake.set()

    def _arm(self, loop: asyncio.AbstractEventLoop) -> None:
        next_due = self.plan.next_due()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = next_due
        if next_due is not None:
            self._timer = loop.call_at(next_due / 1000, self._wake.set)

    @staticmethod
    def _now() -> float:
        return asyncio.get_running_loop().time() * 1000
