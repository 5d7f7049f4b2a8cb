"""The one table of check kinds, and `run_check`, which runs any monitor's check safely once."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import replace
from typing import Any

from uptally.checks import dns, http, jsonrpc, metric, scenario, tcp
from uptally.checks.base import CheckContext, CheckResult, ErrorCode
from uptally.config.schema import ActiveMonitor, monitor_document
from uptally.redaction import Redactor

log = logging.getLogger(__name__)

CheckFn = Callable[[Any, CheckContext], Awaitable[CheckResult]]

CHECKS: dict[str, CheckFn] = {
    "http": http.run,
    "tcp": tcp.run,
    "jsonrpc": jsonrpc.run,
    "dns": dns.run,
    "scenario": scenario.run,
    "metric": metric.run,
}

# A check that overruns its own deadline by this much is cut off from outside.
_HARD_STOP_GRACE_S = 1.0


async def run_check(
    monitor: ActiveMonitor,
    location: str = "local",
    redactor: Redactor | None = None,
) -> CheckResult:
    """Run the monitor's check once; never raises and never outlives timeout + a short grace.

    The message is redacted (URL credentials, secret query values, and the redactor's literals,
    e.g. resolved `${secret:…}` values) before it leaves: nothing secret is ever stored.
    """
    result = await _run(monitor, location)
    redactor = (redactor or Redactor()).including(_secrets_of(monitor, redactor or Redactor()))
    message = redactor.text(result.message)
    return result if message == result.message else replace(result, message=message)


def _secrets_of(monitor: ActiveMonitor, redactor: Redactor) -> list[str]:
    found: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            for key, item in value.items():
                if key == "url" and isinstance(item, str):
                    found.extend(redactor.secrets_in_url(item))
                else:
                    walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(monitor_document(monitor))
    return found


async def _run(monitor: ActiveMonitor, location: str) -> CheckResult:
    kind = getattr(monitor, "kind", None)
    check = CHECKS.get(kind) if isinstance(kind, str) else None
    if check is None:
        return CheckResult.failure(ErrorCode.INTERNAL, f"no check for kind {kind!r}", 0.0)
    loop = asyncio.get_running_loop()
    deadline = loop.time() + monitor.timeout / 1000
    started = time.perf_counter()
    try:
        async with asyncio.timeout_at(deadline + _HARD_STOP_GRACE_S):
            return await check(monitor, CheckContext(location=location, deadline=deadline))
    except TimeoutError:
        return CheckResult.failure(
            ErrorCode.TIMEOUT,
            f"timed out after {monitor.timeout / 1000:.3g}s",
            (time.perf_counter() - started) * 1000,
        )
    except Exception as error:
        log.exception("check %s failed unexpectedly", monitor.id)
        return CheckResult.failure(
            ErrorCode.INTERNAL,
            f"internal error in the {kind} check: {error!r}",
            (time.perf_counter() - started) * 1000,
        )
