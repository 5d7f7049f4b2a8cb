"""What every check returns and receives: CheckResult, error codes, timings and CheckContext."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from uptally import __version__


class ErrorCode(StrEnum):
    TIMEOUT = "timeout"
    DNS = "dns"
    CONNECT_REFUSED = "connect_refused"
    CONNECT = "connect"  # unreachable, reset, other socket errors
    TLS = "tls"
    PROTOCOL = "protocol"  # not a valid HTTP/JSON-RPC/DNS answer
    CLOSED = "closed"  # the peer closed before answering in full
    BODY_TOO_LARGE = "body_too_large"
    REDIRECTS = "redirects"
    STATUS = "status"
    ASSERTION = "assertion"
    JSONRPC_ERROR = "jsonrpc_error"
    LATE = "late"  # heartbeat: no ping in time
    FAILED = "failed"  # heartbeat: the job reported failure
    ALERT = "alert"  # external: a matching Alertmanager alert is firing
    INTERNAL = "internal"  # a bug in uptally; never the target's fault


@dataclass(frozen=True, slots=True)
class StepTiming:
    name: str
    ms: float


@dataclass(frozen=True, slots=True)
class CheckResult:
    ok: bool
    latency_ms: float | None
    error: ErrorCode | None = None
    message: str = ""
    timings: tuple[StepTiming, ...] = ()
    captured: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def failure(
        cls,
        error: ErrorCode,
        message: str,
        latency_ms: float | None = None,
        timings: tuple[StepTiming, ...] = (),
    ) -> CheckResult:
        return cls(False, latency_ms, error, message, timings)


class CheckFailed(Exception):
    """Raised inside a check to end it with an error code and a human message."""

    def __init__(self, code: ErrorCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True, slots=True)
class CheckContext:
    location: str = "local"
    deadline: float = 0.0  # event-loop time by which the whole check must be over
    variables: Mapping[str, Any] = field(default_factory=dict)

    @property
    def user_agent(self) -> str:
        return user_agent(self.location)


def user_agent(location: str) -> str:
    return f"uptally/{__version__} (+location={location})"
