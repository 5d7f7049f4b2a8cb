"""Whether database writes fail now, since when and why: for readiness, metrics and the log."""

from __future__ import annotations

import logging

from sqlalchemy.exc import DBAPIError

from uptally.clock import Clock, Millis
from uptally.metrics import Metrics

log = logging.getLogger(__name__)


def reason_of(error: BaseException) -> str:
    """The driver's own words (e.g. `database or disk is full`), without SQLAlchemy's wrapping."""
    cause = error.orig if isinstance(error, DBAPIError) and error.orig is not None else error
    text = str(cause).strip().splitlines()[0] if str(cause).strip() else ""
    return (text or type(cause).__name__)[:200]


class WriteHealth:
    """One failure episode logs one line when it starts and one when it ends (not per batch)."""

    def __init__(self, clock: Clock, metrics: Metrics) -> None:
        self.clock = clock
        self.metrics = metrics
        self.since: Millis | None = None
        self.reason = ""

    @property
    def failing(self) -> bool:
        return self.since is not None

    def failed(self, error: BaseException) -> None:
        self.metrics.store_write_failures.inc()
        if self.since is not None:
            return
        self.since = self.clock.now_ms()
        self.reason = reason_of(error)
        self.metrics.store_writes_failing_since.set(self.since / 1000)
        log.error(
            "database writes failing: %s; evaluating and notifying from memory, "
            "retrying the writes with backoff",
            self.reason,
        )

    def recovered(self, written: str) -> None:
        if self.since is None:
            return
        took = (self.clock.now_ms() - self.since) / 1000
        self.since = None
        self.reason = ""
        self.metrics.store_writes_failing_since.set(0)
        log.warning(
            "database writes recovered after %.0f s; written from memory: %s", took, written
        )
