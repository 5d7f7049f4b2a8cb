"""Admin API: run a monitor now at its locations ("check now"), or a monitor body once ("test")."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request
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
from uptally.web.auth import principal_of, require_admin
from uptally.web.deps import runtime_of
from uptally.web.errors import ApiError
from uptally.web.schemas import ErrorOut, Model

DEFAULT_WAIT_S = 10.0
MAX_WAIT_S = 60.0
MAX_TEST_TIMEOUT_MS = 30_000
TEST_ID = "test"

router = APIRouter(
    prefix="/api/v1/monitors",
    tags=["monitors"],
    dependencies=[Depends(require_admin)],
    responses={
        401: {"model": ErrorOut},
        403: {"model": ErrorOut},
        404: {"model": ErrorOut},
        409: {"model": ErrorOut},
        422: {"model": ErrorOut},
    },
)


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


@router.post(
    "/{monitor_id}/check",
    response_model=CheckOut,
    summary="Check a monitor now at every location it runs at",
    description="Runs the monitor once now at each of its `locations` and answers one result "
    "per location, shaped as in `/results`. These are real checks: stored and evaluated like "
    "any other. `local` runs in the hub; a remote location's agent is asked and its result "
    "awaited for up to `wait` seconds (default 10, at most 60). A location that does not "
    'report in time answers `{"id": null, "location": …, "at": null, "ok": null, '
    '"latency_ms": null, "error": "timeout", "message": "the probe did not report within '
    '10 s"}` (`ok: null`: no result, unlike a check that timed out, which has `ok: false`); '
    "its result, if it comes later, is stored as usual. A heartbeat monitor (checked by its "
    "pings), a disabled or a paused one answers 409. Audit-logged as `monitor.checked`.",
)
async def check_now(
    request: Request,
    monitor_id: str,
    wait: Annotated[float, Query(gt=0, le=MAX_WAIT_S)] = DEFAULT_WAIT_S,
) -> CheckOut:
    runtime = runtime_of(request)
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
            principal_of(request).actor,
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


@router.post(
    "/test",
    response_model=TestOut,
    response_model_exclude_unset=True,  # `steps` only when the check reports some
    summary="Run a monitor body once, without saving it",
    description="The body is one monitor as in the config file (`id` may be left out). It runs "
    "once from the hub (location `local`, whatever `locations` says; `timeout` at most 30 s) "
    "and nothing is stored or audit-logged. The hub probes public addresses only, unless "
    "`security.allow_internal` names the target or `security.ssrf_guard` is false (422 "
    "otherwise). `${secret:…}` references are resolved as for a saved monitor (admin scope "
    "only: 403 otherwise). `steps`: "
    "where the time went (scenario steps, or dns/connect/tls/ttfb/body).",
)
async def test_monitor(request: Request, document: Annotated[Any, Body()]) -> TestOut:
    runtime = runtime_of(request)
    if not principal_of(request).allows("admin") and SECRET_REFERENCE in json.dumps(document):
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
