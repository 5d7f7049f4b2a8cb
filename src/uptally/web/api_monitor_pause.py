"""Admin API (write scope): pause and resume a monitor (provisioned or not: an operation, not a
config change)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from uptally.pausing import PauseConflict
from uptally.runtime import Runtime
from uptally.web.auth import principal_of, require_scope
from uptally.web.deps import base_url, runtime_of
from uptally.web.errors import ApiError
from uptally.web.schemas import ErrorOut, MonitorOut
from uptally.web.views import monitor_out

router = APIRouter(
    prefix="/api/v1/monitors",
    tags=["monitors"],
    dependencies=[Depends(require_scope("write"))],
    responses={
        401: {"model": ErrorOut},
        403: {"model": ErrorOut},
        404: {"model": ErrorOut},
        409: {"model": ErrorOut},
    },
)


@router.post(
    "/{monitor_id}/pause",
    response_model=MonitorOut,
    summary="Pause a monitor",
    description="Checks stop within a second (embedded probe, agents, the heartbeat watchdog); "
    'the state reads `paused`, and the paused time is neither up nor down ("not monitored" '
    "in the SLA report). 409 if it is paused already. Audit-logged as `monitor.paused`.",
)
async def pause_monitor(request: Request, monitor_id: str) -> MonitorOut:
    runtime = _runtime_with(request, monitor_id)
    try:
        await runtime.pause(monitor_id, principal_of(request).actor)
    except PauseConflict as error:
        raise ApiError(409, str(error)) from None
    return _out(request, runtime, monitor_id)


@router.post(
    "/{monitor_id}/resume",
    response_model=MonitorOut,
    summary="Resume a paused monitor",
    description="Checks start again (the first within one interval) and the next result "
    "decides the state. 409 if it is not paused. Audit-logged as `monitor.resumed`.",
)
async def resume_monitor(request: Request, monitor_id: str) -> MonitorOut:
    runtime = _runtime_with(request, monitor_id)
    try:
        await runtime.resume(monitor_id, principal_of(request).actor)
    except PauseConflict as error:
        raise ApiError(409, str(error)) from None
    return _out(request, runtime, monitor_id)


def _runtime_with(request: Request, monitor_id: str) -> Runtime:
    runtime = runtime_of(request)
    if runtime.config.monitor(monitor_id) is None:
        raise ApiError(404, f"no monitor {monitor_id!r}")
    return runtime


def _out(request: Request, runtime: Runtime, monitor_id: str) -> MonitorOut:
    monitor = runtime.config.monitor(monitor_id)
    if monitor is None:  # deleted meanwhile
        raise ApiError(404, f"no monitor {monitor_id!r}")
    return monitor_out(runtime, monitor, base_url(request))
