"""Failed-authentication limits per client address (a sliding window, bounded in memory)."""

from __future__ import annotations

import time
from collections import OrderedDict, deque
from collections.abc import Callable


class FailureLimiter:
    """After `limit` failures within `window_s`, a client is refused until the oldest expires."""

    def __init__(
        self,
        limit: int,
        window_s: float,
        *,
        max_clients: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.limit = limit
        self.window_s = window_s
        self._max_clients = max_clients
        self._clock = clock
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()

    def retry_after(self, client: str) -> float | None:
        """Seconds until the client may try again, or None if it is not blocked."""
        failures = self._failures.get(client)
        if failures is None:
            return None
        self._expire(failures, self._clock())
        if not failures:
            del self._failures[client]
            return None
        if len(failures) < self.limit:
            return None
        return max(0.0, failures[0] + self.window_s - self._clock())

    def fail(self, client: str) -> None:
        now = self._clock()
        failures = self._failures.pop(client, None) or deque()
        self._expire(failures, now)
        failures.append(now)
        while len(failures) > self.limit:
            failures.popleft()
        self._failures[client] = failures  # most recent last, for eviction
        while len(self._failures) > self._max_clients:
            self._failures.popitem(last=False)

    def _expire(self, failures: deque[float], now: float) -> None:
        while failures and failures[0] <= now - self.window_s:
            failures.popleft()
