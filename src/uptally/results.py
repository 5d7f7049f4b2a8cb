"""The result of one check at one location, as stored and evaluated."""

from __future__ import annotations

from dataclasses import dataclass

from uptally.clock import Millis


@dataclass(frozen=True, slots=True)
class Result:
    id: str
    monitor: str
    location: str
    at: Millis  # when the check started
    ok: bool
    latency_ms: float | None
    error: str | None  # machine-readable code, see checks.base.ErrorCode
    message: str
    degraded: bool = False  # the probe's own network failed its canaries when it ran this check
