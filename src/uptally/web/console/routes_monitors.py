"""The console's monitor page: state per location, latency percentiles, results and outages,
and the operations on it (check now, pause, resume, delete).

Check now, pause and resume need the editor role, as the API needs the write scope for them
(a role is a scope); deleting needs it too, and a monitor made through the API or console.
"""

from __future__ import annotations

from typing import Any
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from starlette.responses import RedirectResponse, Response

from uptally.accounts import users
from uptally.config.managed import MONITOR
from uptally.config.schema import ActiveMonitor
from uptally.managed.changes import InUse, NotFound, Provisioned
from uptally.pausing import PauseConflict
from uptally.web import monitor_reads, monitor_runs
from uptally.web.console import latency_chart, monitor_text, render
from uptally.web.console.latency_chart import Hour
from uptally.web.console.session import Editor, Viewer, principal
from uptally.web.deps import base_url, runtime_of
from uptally.web.errors import ApiError
from uptally.web.views import monitor_out

router = APIRouter(prefix="/console/monitors", include_in_schema=False)

RANGES = {"24h": 24, "7d": 7 * 24}
RESULTS_SHOWN = 50
OUTAGES_SHOWN = 20
DONE = {
    "saved": "Monitor saved.",
    "created": "Monitor created: its first check runs within a second.",
    "paused": "Monitor paused: checks have stopped.",
    "resumed": "Monitor resumed: checks run again.",
}


async def no_such_monitor(request: Request, signed: Any, monitor_id: str) -> Response:
    """The 404 page of a monitor id that names none (the monitor pages and the editor)."""
    return await render.page(
        request,
        signed,
        "message.html",
        nav="overview",
        status=404,
        title="No such monitor",
        message=f"There is no monitor {monitor_id!r}.",
    )


async def monitor_page(
    request: Request,
    signed: Any,
    monitor_id: str,
    status: int = 200,
    **extra: Any,
) -> Response:
    """The monitor page; `extra` adds a notice, an error or the results of a check."""
    runtime = runtime_of(request)
    monitor = runtime.config.monitor(monitor_id)
    if monitor is None:
        return await no_such_monitor(request, signed, monitor_id)
    zone = ZoneInfo(runtime.config.site.timezone)
    span = request.query_params.get("range", "24h")
    span = span if span in RANGES else "24h"
    now = runtime.clock.now_ms()
    until = now - now % monitor_reads.HOUR_MS + monitor_reads.HOUR_MS
    since = until - RANGES[span] * monitor_reads.HOUR_MS
    found = await monitor_reads.latency_by_location(runtime, monitor_id, since, until)
    # A heartbeat's ping URL records pings: shown to whoever may change the monitor.
    can_edit = render.Can.of(users.role_of(signed.user)).edit
    out = monitor_out(runtime, monitor, base_url(request) if can_edit else None)
    charts = [
        latency_chart.chart(
            location,
            [
                Hour(h.hour, h.latency.p50, h.latency.p95, h.latency.p99, h.latency.count)
                for h in found.get(location, [])
            ],
            since,
            until,
            zone,
        )
        for location in [*out.locations, *(loc for loc in found if loc not in out.locations)]
    ]
    results = await monitor_reads.results_of(runtime, monitor_id, limit=RESULTS_SHOWN)
    outages = await monitor_reads.outages_of(runtime, monitors=[monitor_id], limit=OUTAGES_SHOWN)
    done = request.query_params.get("done", "")
    values: dict[str, Any] = {
        "notice": DONE.get(done, ""),
        "error": "",
        "checked": None,
        **extra,
    }
    return await render.page(
        request,
        signed,
        "monitors_page.html",
        nav="overview",
        status=status,
        title=out.name,
        monitor=out,
        active=isinstance(monitor, ActiveMonitor),
        paused=runtime.pausing.is_paused(monitor_id),
        charts=charts,
        span=span,
        ranges=list(RANGES),
        results=results,
        outages=outages,
        **monitor_text.helpers(zone),
        **values,
    )


@router.get("/{monitor_id}")
async def show(request: Request, monitor_id: str, signed: Viewer) -> Response:
    return await monitor_page(request, signed, monitor_id)


@router.post("/{monitor_id}/check")
async def check(request: Request, monitor_id: str, signed: Editor) -> Response:
    runtime = runtime_of(request)
    try:
        checked = await monitor_runs.check_now(
            runtime, monitor_id, principal(signed).actor, monitor_runs.DEFAULT_WAIT_S
        )
    except ApiError as error:
        return await monitor_page(
            request, signed, monitor_id, status=error.status, error=error.message
        )
    return await monitor_page(request, signed, monitor_id, checked=checked.results)


@router.post("/{monitor_id}/pause")
async def pause(request: Request, monitor_id: str, signed: Editor) -> Response:
    return await _pausing(request, monitor_id, signed, pause=True)


@router.post("/{monitor_id}/resume")
async def resume(request: Request, monitor_id: str, signed: Editor) -> Response:
    return await _pausing(request, monitor_id, signed, pause=False)


async def _pausing(request: Request, monitor_id: str, signed: Any, pause: bool) -> Response:
    runtime = runtime_of(request)
    if runtime.config.monitor(monitor_id) is None:
        return await no_such_monitor(request, signed, monitor_id)
    actor = principal(signed).actor
    try:
        await (runtime.pause if pause else runtime.resume)(monitor_id, actor)
    except PauseConflict as error:
        return await monitor_page(request, signed, monitor_id, status=409, error=str(error))
    done = "paused" if pause else "resumed"
    return RedirectResponse(f"/console/monitors/{monitor_id}?done={done}", status_code=303)


@router.post("/{monitor_id}/delete")
async def delete(request: Request, monitor_id: str, signed: Editor) -> Response:
    runtime = runtime_of(request)
    try:
        await runtime.changes.delete(MONITOR, monitor_id, principal(signed).actor, None)
    except NotFound:
        return await no_such_monitor(request, signed, monitor_id)
    except (Provisioned, InUse) as error:
        return await monitor_page(request, signed, monitor_id, status=409, error=str(error))
    return await render.page(
        request,
        signed,
        "message.html",
        nav="overview",
        title="Monitor deleted",
        message=f"Monitor {monitor_id!r} was deleted: its checks have stopped; its results "
        "and outages are kept.",
    )
