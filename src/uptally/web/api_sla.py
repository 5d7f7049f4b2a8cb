"""Admin API: SLA reports, the customer credit ledger, error budgets and manual exclusions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Path, Query, Request
from fastapi.responses import JSONResponse, PlainTextResponse, Response
from pydantic import Field

from uptally import audit
from uptally.clock import Millis, iso
from uptally.ids import new_id
from uptally.maintenance.recurrence import local_ms
from uptally.runtime import Runtime
from uptally.sla import service as sla_service
from uptally.sla.export import (
    LEDGER_COLUMNS,
    budget_document,
    burn_document,
    ledger_document,
    report_csv,
    report_document,
    table_csv,
)
from uptally.sla.ledger import Exclusion
from uptally.sla.periods import Period, parse_period
from uptally.store import sla as sla_store
from uptally.store.sla import StoredExclusion
from uptally.web.auth import principal_of, require_admin
from uptally.web.deps import TimeParam, millis, runtime_of
from uptally.web.errors import ApiError
from uptally.web.schemas import ErrorOut, Model

router = APIRouter(
    prefix="/api/v1/sla",
    tags=["sla"],
    dependencies=[Depends(require_admin)],
    responses={
        400: {"model": ErrorOut},
        401: {"model": ErrorOut},
        404: {"model": ErrorOut},
        422: {"model": ErrorOut},
    },
)

PeriodQuery = Annotated[
    str,
    Query(max_length=16, description="YYYY-MM, YYYY-Qn or YYYY (calendar, site timezone)"),
]
Format = Literal["json", "csv"]
_EARLIEST: Millis = 946_684_800_000  # 2000-01-01


class ExclusionIn(Model):
    start: datetime
    end: datetime
    reason: str = Field(min_length=1, max_length=2000)
    component: str | None = Field(default=None, max_length=64)
    policy: str | None = Field(default=None, max_length=64)


class ExclusionOut(Model):
    id: str
    start: str
    end: str
    reason: str
    component: str | None
    policy: str | None
    created_at: str
    created_by: str
    removed_at: str | None
    removed_by: str | None


class ExclusionList(Model):
    exclusions: list[ExclusionOut]


def _period(runtime: Runtime, text: str) -> Period:
    try:
        return parse_period(text, runtime.config.site.timezone)
    except ValueError as error:
        raise ApiError(422, str(error)) from None


def _exclusion_out(stored: StoredExclusion) -> ExclusionOut:
    x = stored.exclusion
    return ExclusionOut(
        id=x.id,
        start=iso(x.start) or "",
        end=iso(x.end) or "",
        reason=x.reason,
        component=x.component,
        policy=x.policy,
        created_at=iso(stored.created_at) or "",
        created_by=stored.created_by,
        removed_at=iso(stored.removed_at),
        removed_by=stored.removed_by,
    )


@router.get("/report", response_model=None)
async def sla_report(
    request: Request,
    period: PeriodQuery,
    policy: Annotated[str | None, Query(max_length=64)] = None,
    format: Format = "json",
) -> Response:
    """Per policy and component: uptime %, downtime and excluded minutes, met, credit %, the
    outages that counted; per customer credits; latency percentiles against objectives."""
    runtime = runtime_of(request)
    wanted = _period(runtime, period)
    if policy is not None and runtime.config.sla.policy(policy) is None:
        raise ApiError(404, f"no SLA policy {policy!r}")
    report = await sla_service.report(
        runtime.db, runtime.config, wanted, runtime.clock.now_ms(), {policy} if policy else None
    )
    if format == "csv":
        return PlainTextResponse(report_csv(report), media_type="text/csv")
    return JSONResponse(report_document(report))


@router.get("/ledger", response_model=None)
async def sla_ledger(request: Request, period: PeriodQuery, format: Format = "json") -> Response:
    """Credits per customer for a period (what a billing system consumes). A closed period
    answers what was recorded when it closed (and sent as sla.period_closed)."""
    runtime = runtime_of(request)
    wanted = _period(runtime, period)
    async with runtime.db.connect() as conn:
        report = await sla_store.report(conn, runtime.config, wanted, runtime.clock.now_ms())
        closed = await sla_store.closed_ledgers(conn, wanted.label)
    document = ledger_document(report)
    customers: list[dict[str, Any]] = []
    for live in document["customers"]:
        recorded = closed.get(live["policy"] or "")
        row = live
        if recorded is not None:
            kept = (c for c in recorded["customers"] if c["customer"] == live["customer"])
            row = next(kept, live)
        customers.append({**row, "closed": recorded is not None})
    document["customers"] = customers
    if format == "csv":
        csv_text = table_csv([*LEDGER_COLUMNS, "closed"], customers)
        return PlainTextResponse(csv_text, media_type="text/csv")
    return JSONResponse(document)


@router.get("/budgets")
async def sla_budgets(request: Request) -> dict[str, Any]:
    """The error budget of every policy and component in the current period."""
    runtime = runtime_of(request)
    rows = await sla_service.current_budgets(runtime.db, runtime.config, runtime.clock.now_ms())
    return {"budgets": [budget_document(row) for row in rows]}


@router.get("/burn-rates")
async def sla_burn_rates(request: Request) -> dict[str, Any]:
    """Each policy's components' burn rates over the windows of `sla.burn_alerts`, ending now
    (1: the budget lasts exactly the period; the alerts fire at their `factor`)."""
    runtime = runtime_of(request)
    config = runtime.config
    rows = await sla_service.current_burn_rates(runtime.db, config, runtime.clock.now_ms())
    return {"burn_rates": [burn_document(row, config.sla.burn_alerts) for row in rows]}


@router.get("/exclusions", response_model=ExclusionList)
async def list_exclusions(
    request: Request,
    since: TimeParam = None,
    until: TimeParam = None,
    include_removed: bool = False,
    limit: Annotated[int, Query(ge=1, le=5000)] = 500,
) -> ExclusionList:
    runtime = runtime_of(request)
    async with runtime.db.connect() as conn:
        rows = await sla_store.list_exclusions(
            conn,
            since=millis(since, "since"),
            until=millis(until, "until"),
            include_removed=include_removed,
            limit=limit,
        )
    return ExclusionList(exclusions=[_exclusion_out(row) for row in rows])


@router.post("/exclusions", response_model=ExclusionOut, status_code=201)
async def add_exclusion(request: Request, body: ExclusionIn) -> ExclusionOut:
    """Time that does not count for the SLA, with a reason (audit-logged). Times without an
    offset are in the site timezone."""
    runtime = runtime_of(request)
    config = runtime.config
    zone = config.site.timezone
    now = runtime.clock.now_ms()
    if body.component is not None and not any(c.id == body.component for c in config.components):
        raise ApiError(404, f"no component {body.component!r}")
    if body.policy is not None and config.sla.policy(body.policy) is None:
        raise ApiError(404, f"no SLA policy {body.policy!r}")
    try:
        start, end = local_ms(body.start, zone), local_ms(body.end, zone)
    except (OverflowError, OSError, ValueError):
        raise ApiError(422, "time out of range") from None
    if end <= start:
        raise ApiError(422, "end must be after start")
    if start < _EARLIEST or end > now + 366 * 86_400_000:
        raise ApiError(422, "an exclusion lies between 2000 and a year from now")
    actor = principal_of(request).actor
    exclusion = Exclusion(new_id(now), start, end, body.reason.strip(), body.component, body.policy)
    async with runtime.db.begin() as conn:
        stored = await sla_store.add_exclusion(conn, exclusion, actor, now)
        await audit.append(
            conn,
            actor,
            "sla.exclusion_added",
            f"sla-exclusion:{exclusion.id}",
            {
                "start": iso(start),
                "end": iso(end),
                "reason": exclusion.reason,
                "component": exclusion.component,
                "policy": exclusion.policy,
            },
            at=now,
        )
    return _exclusion_out(stored)


@router.delete("/exclusions/{exclusion_id}", response_model=ExclusionOut)
async def remove_exclusion(
    request: Request, exclusion_id: Annotated[str, Path(max_length=64)]
) -> ExclusionOut:
    """Withdraw an exclusion: it counts no more, and stays on record (audit-logged)."""
    runtime = runtime_of(request)
    now = runtime.clock.now_ms()
    actor = principal_of(request).actor
    async with runtime.db.begin() as conn:
        if not await sla_store.remove_exclusion(conn, exclusion_id, actor, now):
            raise ApiError(404, f"no exclusion {exclusion_id!r} in effect")
        await audit.append(
            conn, actor, "sla.exclusion_removed", f"sla-exclusion:{exclusion_id}", {}, at=now
        )
        stored = await sla_store.get_exclusion(conn, exclusion_id)
    assert stored is not None
    return _exclusion_out(stored)
