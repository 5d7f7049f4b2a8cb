"""Run a monitor now at its locations ("check now"), or a monitor body once ("test"): the
service behind the admin API's routes and the console's buttons (refusals as ApiError)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

from pydantic import ValidationError

from uptally import audit
from uptally.checks.base import CheckResult
from uptally.checks.net import guarded
from uptally.clock import iso
from uptally.config.pointers import pointer_issues
from uptally.config.schema import ActiveMonitor, HeartbeatMonitor, monitor_document
from uptally.config.schema import monitor_from_document as read_monitor
from uptally.ingest import Work
from uptally.managed.changes import SECRET_REFERENCE, SecretsNeedAdmin
from uptally.results import Result
from uptally.runtime import Runtime
from uptally.web.errors import ApiError
from uptally.web.schemas import Model

DEFAULT_WAIT_S = 10.0
MAX_WAIT_S = 60.0
MAX_TEST_TIMEOUT_MS = 30_000
TEST_ID = "test"


class CheckedOut(Model):
    id: str | None
    monitor: str
    location: str
    at: str | None
    ok: bool | None  # null: the location did not report in time
    latency_ms: float | None
    error: str | None
    message: str


class CheckOut(Model):
    results: list[CheckedOut]


class StepOut(Model):
    name: str
    ms: float


class TestedOut(Model):
    ok: bool
    latency_ms: float | None
    error: str | None
    message: str
    steps: list[StepOut] | None = None


class TestOut(Model):
    result: TestedOut


async def check_now(runtime: Runtime, monitor_id: str, actor: str, wait: float) -> CheckOut:
    """Check the monitor once now at each of its locations (stored, evaluated, audit-logged)."""
    monitor = runtime.config.monitor(monitor_id)
    if monitor is None:
        raise ApiError(404, f"no monitor {monitor_id!r}")
    if isinstance(monitor, HeartbeatMonitor) or not isinstance(monitor, ActiveMonitor):
        raise ApiError(409, "a heartbeat monitor is checked by its pings")
    if not monitor.enabled:
        raise ApiError(409, f"monitor {monitor_id!r} is disabled (enabled: false)")
    if runtime.pausing.is_paused(monitor_id):
        raise ApiError(409, f"monitor {monitor_id!r} is paused: resume it to check it")
    async with runtime.db.begin() as conn:
        await audit.append(
            conn,
            actor,
            "monitor.checked",
            f"monitor:{monitor_id}",
            {"locations": list(monitor.locations)},
        )
    deadline = asyncio.get_running_loop().time() + wait
    runs = [_check_at(runtime, monitor, location, deadline) for location in monitor.locations]
    found = await asyncio.gather(*runs)
    return CheckOut(
        results=[
            _checked(result) if result is not None else _silent(monitor_id, location, wait)
            for location, result in zip(monitor.locations, found, strict=True)
        ]
    )


async def _check_at(
    runtime: Runtime, monitor: ActiveMonitor, location: str, deadline: float
) -> Result | None:
    """The result of checking `monitor` at `location` now; None if none came before
    `deadline` (event-loop time)."""
    if location == runtime.probe.location:
        return await _check_here(runtime, monitor, deadline)
    runs = runtime.fleet.runs
    request_id, answer = runs.ask(location, monitor_document(monitor), runtime.clock.now_ms())
    try:
        async with asyncio.timeout_at(deadline):
            return await answer  # once the agent's push with it is written
    except TimeoutError:
        return None
    finally:
        runs.forget(request_id)


async def _check_here(runtime: Runtime, monitor: ActiveMonitor, deadline: float) -> Result | None:
    """Check in the hub, then wait (until `deadline`) for the result to be written, so that it
    is listed at once; a write that lags or fails does not take the answer away."""
    try:
        async with asyncio.timeout_at(deadline):
            result = await runtime.probe.check_once(monitor)
    except TimeoutError:
        return None
    written = runtime.ingest.submit_work(Work(results=[result]))
    written.add_done_callback(lambda done: done.cancelled() or done.exception())  # retrieved
    with contextlib.suppress(Exception):  # the writer logs its failures
        async with asyncio.timeout_at(deadline):
            await asyncio.shield(written)
    return result


def _checked(result: Result) -> CheckedOut:
    return CheckedOut(
        id=result.id,
        monitor=result.monitor,
        location=result.location,
        at=iso(result.at),
        ok=result.ok,
        latency_ms=result.latency_ms,
        error=result.error,
        message=result.message,
    )


def _silent(monitor_id: str, location: str, wait: float) -> CheckedOut:
    return CheckedOut(
        id=None,
        monitor=monitor_id,
        location=location,
        at=None,
        ok=None,
        latency_ms=None,
        error="timeout",
        message=f"the probe did not report within {wait:g} s",
    )


async def test_document(runtime: Runtime, document: Any, admin: bool) -> TestOut:
    """Run a monitor body once from the hub, storing nothing. `admin`: whether the caller may
    refer to the secret store."""
    if not admin and SECRET_REFERENCE in json.dumps(document):
        raise ApiError(403, str(SecretsNeedAdmin()))
    monitor = _readable(document)
    settings = runtime.config.security
    bounded = monitor.model_copy(
        update={"timeout": min(monitor.timeout, MAX_TEST_TIMEOUT_MS), "locations": ["local"]}
    )
    guard = settings.guard if settings.ssrf_guard else None
    with guarded(guard) as refused:
        outcome = await runtime.probe.trial(bounded)
    if refused:
        raise ApiError(
            422,
            f"refused by the SSRF guard (see security.allow_internal): {refused[0]}",
            details=[{"path": "", "message": problem} for problem in refused],
        )
    return TestOut(result=_tested(outcome))


def _readable(document: Any) -> ActiveMonitor:
    """The body as a monitor, or 422 with JSON pointers into it (the config loader's words)."""
    if not isinstance(document, dict):
        raise ApiError(
            422,
            "the body must be a JSON object (one monitor)",
            details=[{"path": "", "message": "expected a JSON object"}],
        )
    document = {"id": TEST_ID, **document}
    try:
        monitor = read_monitor(document)
    except ValidationError as error:
        problems = pointer_issues(error, document)
        details = [{"path": path, "message": message} for path, message in problems]
        first = f"{problems[0][0] or '/'}: {problems[0][1]}" if problems else str(error)
        raise ApiError(422, f"invalid monitor: {first}", details=details) from None
    if isinstance(monitor, HeartbeatMonitor) or not isinstance(monitor, ActiveMonitor):
        message = "a heartbeat monitor is checked by its pings: there is nothing to run"
        raise ApiError(422, message, details=[{"path": "/kind", "message": message}])
    return monitor


def _tested(outcome: CheckResult) -> TestedOut:
    tested = TestedOut(
        ok=outcome.ok,
        latency_ms=None if outcome.latency_ms is None else round(outcome.latency_ms, 3),
        error=None if outcome.error is None else outcome.error.value,
        message=outcome.message,
    )
    if outcome.timings:
        tested.steps = [StepOut(name=t.name, ms=round(t.ms, 3)) for t in outcome.timings]
    return tested
