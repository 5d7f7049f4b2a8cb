"""Admin API: outages (detected and recorded by hand)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request

from uptally import audit
from uptally.clock import Millis, iso
from uptally.evaluator import Outage
from uptally.ids import new_id
from uptally.store import outages as outage_store
from uptally.web import monitor_reads
from uptally.web.auth import principal_of, require_admin
from uptally.web.deps import TimeParam, millis, runtime_of
from uptally.web.errors import ApiError
from uptally.web.managed_http import deleted_monitor
from uptally.web.schemas import ErrorOut, OutageIn, OutageList, OutageOut
from uptally.web.views import outage_out

router = APIRouter(
    prefix="/api/v1/outages",
    tags=["outages"],
    dependencies=[Depends(require_admin)],
    responses={
        400: {"model": ErrorOut},
        401: {"model": ErrorOut},
        404: {"model": ErrorOut},
        422: {"model": ErrorOut},
    },
)

_EARLIEST: Millis = 946_684_800_000  # 2000-01-01: older backfills are surely typos


@router.get("", response_model=OutageList)
async def list_outages(
    request: Request,
    monitor: Annotated[str | None, Query(max_length=64)] = None,
    component: Annotated[str | None, Query(max_length=64)] = None,
    since: TimeParam = None,
    until: TimeParam = None,
    verified: bool | None = None,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> OutageList:
    runtime = runtime_of(request)
    config = runtime.config
    monitors: list[str] | None = None
    if monitor is not None:
        if config.monitor(monitor) is None and not await deleted_monitor(runtime, monitor):
            raise ApiError(404, f"no monitor {monitor!r}")
        monitors = [monitor]
    if component is not None:
        found = next((c for c in config.components if c.id == component), None)
        if found is None:
            raise ApiError(404, f"no component {component!r}")
        monitors = (monitors or []) + list(found.monitors)
    rows = await monitor_reads.outages_of(
        runtime,
        monitors=monitors,
        component=component,
        since=millis(since, "since"),
        until=millis(until, "until"),
        verified_only=bool(verified),
        limit=limit,
    )
    gone = {
        r.outage.monitor for r in rows if r.outage.monitor and not config.monitor(r.outage.monitor)
    }
    return OutageList(outages=[outage_out(row, row.outage.monitor in gone) for row in rows])


@router.post("", response_model=OutageOut, status_code=201)
async def record_outage(request: Request, body: OutageIn) -> OutageOut:
    """Record a known outage by hand (backfill); it counts in the SLA like a detected one."""
    runtime = runtime_of(request)
    config = runtime.config
    if (body.monitor is None) == (body.component is None):
        raise ApiError(422, "give exactly one of monitor or component")
    if body.monitor is not None and config.monitor(body.monitor) is None:
        raise ApiError(404, f"no monitor {body.monitor!r}")
    if body.component is not None and not any(c.id == body.component for c in config.components):
        raise ApiError(404, f"no component {body.component!r}")
    start, end = millis(body.start, "start"), millis(body.end, "end")
    assert start is not None
    assert end is not None
    now = runtime.clock.now_ms()
    if end <= start:
        raise ApiError(422, "end must be after start")
    if start < _EARLIEST or end > now + 60_000:
        raise ApiError(422, "an outage recorded by hand must lie between 2000 and now")
    outage = Outage(
        new_id(start),
        body.monitor or "",
        start,
        end,
        True,
        {},
        body.reason.strip() or "recorded by hand",
    )
    async with runtime.db.begin() as conn:
        await outage_store.insert_manual(conn, outage, body.component, now)
        await audit.append(
            conn,
            principal_of(request).actor,
            "outage.recorded",
            f"outage:{outage.id}",
            {
                "monitor": body.monitor,
                "component": body.component,
                "start": iso(start),
                "end": iso(end),
                "reason": outage.reason,
            },
            at=now,
        )
        stored = await outage_store.get_outage(conn, outage.id)
    assert stored is not None
    return outage_out(stored)
