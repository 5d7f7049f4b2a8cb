"""Monitor state changes fanned out to live consoles: one shared source, a bounded queue each.

The runtime tells the feed which monitors may have changed (`check`); the feed compares what
each now shows (its state and its locations' states) with what it showed, keeps the counts per
state up to date, and turns the changes of a short window into one frame, encoded once and
shared by every subscriber. A subscriber holds references to frames, at most `queue` of them:
one that falls behind (a slow client) loses its frames and is told to resync instead, so a
slow reader never grows memory. The newest `keep` frames stay for a reconnect to replay.
"""

from __future__ import annotations

import asyncio
import json
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from uptally.clock import Millis
from uptally.evaluator import LocationSnapshot, LocationState, Rules

# What a monitor shows: its state, then (location, state) for each of its locations.
Shown = tuple[str, tuple[tuple[str, str], ...]]

WINDOW_S = 0.1  # changes gathered into one frame (at 1,000 changes/s: 10 frames/s, not 1,000)
KEEP = 64  # frames kept for a reconnect (Last-Event-ID) to replay
QUEUE = 32  # frames a subscriber may have unread before it must resync


def location_state(snapshot: LocationSnapshot | None, rules: Rules | None, now: Millis) -> str:
    """A location's state as shown: `offline` when it has been silent past the monitor's stale
    time, `degraded` when its probe's own network failed its canaries, else its state."""
    if snapshot is None:
        return LocationState.UNKNOWN.value
    last = snapshot.last
    if last is not None:
        if rules is not None and rules.stale_ms is not None and now - last.at > rules.stale_ms:
            return "offline"
        if last.degraded:
            return "degraded"
    return snapshot.state.value


@dataclass(frozen=True, slots=True)
class Frame:
    seq: int
    data: str  # JSON {"seq", "monitors": {id: {"state", "locations": {name: state}}}, "counts"}


RESYNC = Frame(-1, "")  # handed to a subscriber that lost frames: read everything again


class Subscription:
    """One live console's queue of shared frames."""

    def __init__(self, limit: int) -> None:
        self._frames: deque[Frame] = deque()
        self._limit = limit
        self._ready = asyncio.Event()
        self._missed = False

    def put(self, frame: Frame) -> None:
        if self._missed:
            return
        if len(self._frames) >= self._limit:
            self._frames.clear()  # fell behind: what it missed is read again in one go
            self._missed = True
        else:
            self._frames.append(frame)
        self._ready.set()

    def resync(self) -> None:
        self._frames.clear()
        self._missed = True
        self._ready.set()

    async def next(self, timeout: float) -> Frame | None:
        """The next frame, RESYNC, or None when `timeout` seconds pass without one."""
        if not self._frames and not self._missed:
            self._ready.clear()
            try:
                async with asyncio.timeout(timeout):
                    await self._ready.wait()
            except TimeoutError:
                return None
        if self._missed:
            self._missed = False
            return RESYNC
        return self._frames.popleft()


class LiveStates:
    def __init__(
        self,
        shown: Callable[[str], Shown],
        *,
        window_s: float = WINDOW_S,
        keep: int = KEEP,
        queue: int = QUEUE,
    ) -> None:
        self._shown_of = shown
        self._window_s = window_s
        self._queue = queue
        self._shown: dict[str, Shown] = {}
        self.counts: dict[str, int] = {}
        self.seq = 0  # of the newest frame
        self.version = 0  # moves with every change recorded (before its frame goes out)
        self._pending: dict[str, Shown] = {}
        self._recent: deque[Frame] = deque(maxlen=keep)
        self._subscribers: set[Subscription] = set()
        self._flush: asyncio.TimerHandle | asyncio.Handle | None = None
        self._last_flush = 0.0

    @property
    def subscribers(self) -> int:
        return len(self._subscribers)

    def state(self, monitor_id: str) -> str | None:
        shown = self._shown.get(monitor_id)
        return shown[0] if shown else None

    def reset(self, monitor_ids: Iterable[str]) -> None:
        """The monitors there are now (at start and after a config change): counts anew, and
        a change for each monitor that shows something else than before."""
        old, self._shown = self._shown, {}
        self.counts = {}
        for monitor_id in monitor_ids:
            shown = self._shown[monitor_id] = self._shown_of(monitor_id)
            self.counts[shown[0]] = self.counts.get(shown[0], 0) + 1
            if old.get(monitor_id) != shown:
                self._pending[monitor_id] = shown
        self._schedule()

    def track(self, monitor_ids: Iterable[str]) -> None:
        """Monitors made or changed (their locations may have changed): shown from now on."""
        for monitor_id in monitor_ids:
            if monitor_id not in self._shown:
                shown = self._shown[monitor_id] = self._shown_of(monitor_id)
                self.counts[shown[0]] = self.counts.get(shown[0], 0) + 1
                self._pending[monitor_id] = shown
            else:
                self.check([monitor_id])
        self._schedule()

    def forget(self, monitor_ids: Iterable[str]) -> None:
        """Monitors deleted: counted no more."""
        for monitor_id in monitor_ids:
            shown = self._shown.pop(monitor_id, None)
            if shown is not None:
                self.counts[shown[0]] -= 1
                self._pending.pop(monitor_id, None)
        self._schedule()

    def check(self, monitor_ids: Iterable[str]) -> None:
        """These monitors may show something else now: the changes go out in the next frame."""
        changed = False
        for monitor_id in monitor_ids:
            before = self._shown.get(monitor_id)
            if before is None:
                continue  # not (or no longer) configured: `reset` decides
            shown = self._shown_of(monitor_id)
            if shown == before:
                continue
            self._shown[monitor_id] = shown
            if shown[0] != before[0]:
                self.counts[before[0]] -= 1
                self.counts[shown[0]] = self.counts.get(shown[0], 0) + 1
            self._pending[monitor_id] = shown
            changed = True
        if changed:
            self._schedule()

    def subscribe(self, since: int | None = None) -> Subscription:
        """A queue of the frames after `since` (a frame's seq): those still kept are replayed;
        if some are no longer kept, the subscriber starts with RESYNC."""
        subscription = Subscription(self._queue)
        if since is not None and since != self.seq:
            replay = [f for f in self._recent if f.seq > since]
            if since > self.seq or not replay or replay[0].seq != since + 1:
                subscription.resync()
            else:
                for frame in replay:
                    subscription.put(frame)
        self._subscribers.add(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        self._subscribers.discard(subscription)

    def _schedule(self) -> None:
        self.version += 1
        if self._flush is not None or not self._pending:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a command reading state): nobody listens
            self._pending.clear()
            return
        wait = self._last_flush + self._window_s - loop.time()
        self._flush = loop.call_later(wait, self.flush) if wait > 0 else loop.call_soon(self.flush)

    def flush(self) -> None:
        """Send what changed since the last frame, as one frame, to every subscriber."""
        self._flush = None
        if not self._pending:
            return
        loop = asyncio.get_running_loop()
        self._last_flush = loop.time()
        pending, self._pending = self._pending, {}
        self.seq += 1
        frame = Frame(self.seq, _encode(self.seq, pending, self.counts))
        self._recent.append(frame)
        for subscription in self._subscribers:
            subscription.put(frame)


def _encode(seq: int, changes: Mapping[str, Shown], counts: Mapping[str, int]) -> str:
    monitors = {
        monitor_id: {"state": state, "locations": dict(locations)}
        for monitor_id, (state, locations) in changes.items()
    }
    body = {"seq": seq, "monitors": monitors, "counts": {k: v for k, v in counts.items() if v}}
    return json.dumps(body, separators=(",", ":"))
