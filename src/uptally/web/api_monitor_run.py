"""Admin API: run a monitor now at its locations ("check now"), or a monitor body once ("test")."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Body, Depends, Query, Request

from uptally.web import monitor_runs
from uptally.web.auth import principal_of, require_admin
from uptally.web.deps import runtime_of
from uptally.web.monitor_runs import DEFAULT_WAIT_S, MAX_WAIT_S, CheckOut, TestOut
from uptally.web.schemas import ErrorOut

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
    return await monitor_runs.check_now(runtime, monitor_id, principal_of(request).actor, wait)


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
    admin = principal_of(request).allows("admin")
    return await monitor_runs.test_document(runtime_of(request), document, admin)
