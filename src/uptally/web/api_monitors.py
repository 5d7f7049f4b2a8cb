"""Admin API: monitors with their current state, and their results."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from uptally.store import results as result_store
from uptally.web.auth import principal_of, require_admin
from uptally.web.deps import TimeParam, base_url, millis, runtime_of
from uptally.web.errors import ApiError
from uptally.web.schemas import ErrorOut, MonitorList, MonitorOut, ResultList
from uptally.web.views import monitor_out, result_out

router = APIRouter(
    prefix="/api/v1/monitors",
    tags=["monitors"],
    dependencies=[Depends(require_admin)],
    responses={
        400: {"model": ErrorOut},
        401: {"model": ErrorOut},
        404: {"model": ErrorOut},
        422: {"model": ErrorOut},
    },
)


@router.get("", response_model=MonitorList)
async def list_monitors(request: Request) -> MonitorList:
    runtime = runtime_of(request)
    url = _ping_base(request)
    return MonitorList(monitors=[monitor_out(runtime, m, url) for m in runtime.config.monitors])


@router.get("/{monitor_id}", response_model=MonitorOut)
async def get_monitor(request: Request, monitor_id: str) -> MonitorOut:
    runtime = runtime_of(request)
    monitor = runtime.config.monitor(monitor_id)
    if monitor is None:
        raise ApiError(404, f"no monitor {monitor_id!r}")
    return monitor_out(runtime, monitor, _ping_base(request))


def _ping_base(request: Request) -> str | None:
    """Ping URLs record pings: shown to tokens with the write scope only."""
    return base_url(request) if principal_of(request).allows("write") else None


@router.get("/{monitor_id}/results", response_model=ResultList)
async def list_results(
    request: Request,
    monitor_id: str,
    location: Annotated[str | None, Query(max_length=64)] = None,
    since: TimeParam = None,
    until: TimeParam = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> ResultList:
    runtime = runtime_of(request)
    if runtime.config.monitor(monitor_id) is None:
        raise ApiError(404, f"no monitor {monitor_id!r}")
    async with runtime.db.connect() as conn:
        rows = await result_store.list_results(
            conn,
            monitor_id,
            location=location,
            since=millis(since, "since"),
            until=millis(until, "until"),
            limit=limit,
        )
    return ResultList(results=[result_out(r) for r in rows])
