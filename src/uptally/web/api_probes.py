"""Probe agents' API (assignments, result batches) and the admin view of probe locations."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request, Response
from fastapi.responses import JSONResponse
from pydantic import Field

from uptally.clock import iso
from uptally.fleet import Report
from uptally.redaction import Redactor
from uptally.results import Result
from uptally.store.probes import Gap
from uptally.web.auth import require_admin
from uptally.web.deps import runtime_of
from uptally.web.errors import ApiError
from uptally.web.schemas import ErrorOut, Model

ASSIGNMENT_POLL_S = 30
MAX_BATCH = 5000
_CHALLENGE = {"WWW-Authenticate": "Bearer"}

router = APIRouter(prefix="/api/v1/probes", tags=["probes"])


# -- shapes ------------------------------------------------------------------------------------


class ResultIn(Model):
    id: str = Field(min_length=1, max_length=40)
    monitor: str = Field(min_length=1, max_length=64)
    at: int = Field(ge=0, description="when the check started, ms since the epoch (agent clock)")
    ok: bool
    latency_ms: float | None = Field(default=None, ge=0)
    error: str | None = Field(default=None, max_length=32)
    message: str = Field(default="", max_length=4000)
    degraded: bool = False


class GapIn(Model):
    monitor: str = Field(min_length=1, max_length=64)
    first_at: int = Field(ge=0)
    last_at: int = Field(ge=0)
    count: int = Field(ge=1)
    failures: int = Field(ge=0)


class CanaryIn(Model):
    target: str = Field(max_length=500)
    ok: bool
    error: str | None = Field(default=None, max_length=500)


class AgentIn(Model):
    version: str | None = Field(default=None, max_length=64)
    queue_depth: int | None = Field(default=None, ge=0)
    degraded: bool = False
    canaries: list[CanaryIn] = Field(default_factory=list, max_length=50)
    dropped: list[GapIn] = Field(default_factory=list, max_length=10_000)


class ResultBatch(Model):
    location: str = Field(min_length=1, max_length=64)
    sent_at: int = Field(ge=0, description="the agent's clock when it sent the batch (ms)")
    agent: AgentIn = Field(default_factory=AgentIn)
    results: list[ResultIn] = Field(default_factory=list, max_length=MAX_BATCH)


class BatchOut(Model):
    accepted: int
    duplicates: int
    clock_offset_ms: int
    corrected: bool


class AssignmentOut(Model):
    location: str
    version: str
    monitors: list[dict[str, Any]]
    canaries: list[str] | None = Field(
        description="what the agent checks to know its own network works; null: its defaults"
    )
    poll_interval_s: int


class CanaryOut(Model):
    target: str
    ok: bool
    error: str | None = None


class ProbeOut(Model):
    name: str
    state: Literal["up", "degraded", "offline", "never"]
    since: str | None
    last_contact: str | None
    version: str | None
    address: str | None
    clock_offset_ms: int | None
    queue_depth: int | None
    dropped_total: int
    rejected_total: int
    canaries: list[CanaryOut]
    monitors: int


class ProbeList(Model):
    probes: list[ProbeOut]


# -- agent authentication ----------------------------------------------------------------------


def require_location(request: Request) -> str:
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "missing bearer token (the location's probe token)", headers=_CHALLENGE)
    location = runtime_of(request).fleet.authenticate(token.strip())
    if location is None:
        raise ApiError(401, "invalid probe token", headers=_CHALLENGE)
    return location


Location = Annotated[str, Depends(require_location)]
_AGENT_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut},
    401: {"model": ErrorOut},
    403: {"model": ErrorOut},
    413: {"model": ErrorOut},
    422: {"model": ErrorOut},
}


# -- routes ------------------------------------------------------------------------------------


@router.get("/assignments", response_model=AssignmentOut, responses={304: {}, **_AGENT_ERRORS})
async def assignments(request: Request, location: Location) -> Response:
    """The monitors this location runs; answers 304 while If-None-Match is current."""
    assignment = runtime_of(request).fleet.assignment(location)
    etag = f'"{assignment.version}"'
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers={"ETag": etag})
    body = AssignmentOut(
        location=location,
        version=assignment.version,
        monitors=assignment.monitors,
        canaries=assignment.canaries,
        poll_interval_s=ASSIGNMENT_POLL_S,
    )
    return JSONResponse(body.model_dump(), headers={"ETag": etag, "Cache-Control": "no-store"})


@router.post("/results", response_model=BatchOut, responses=_AGENT_ERRORS)
async def push_results(request: Request, batch: ResultBatch, location: Location) -> Any:
    """Ingest a batch of results (idempotent by result id) with the agent's report."""
    runtime = runtime_of(request)
    fleet = runtime.fleet
    metrics = runtime.metrics
    if batch.location != location:
        raise ApiError(403, f"this token belongs to location {location!r}, not {batch.location!r}")
    now = runtime.clock.now_ms()
    offset = now - batch.sent_at
    settings = runtime.config.probe
    skewed = abs(offset) > settings.max_clock_skew
    if skewed and settings.clock_skew == "reject":
        metrics.probe_results.labels(location, "skewed").inc(len(batch.results))
        raise ApiError(
            422,
            f"the probe's clock is {offset / 1000:+.1f}s off the hub's (more than "
            f"{settings.max_clock_skew / 1000:g}s): fix its time (NTP); results refused",
            "clock_skew",
        )
    assigned = fleet.assigned(location)
    unassigned = [r.id for r in batch.results if r.monitor not in assigned]
    if unassigned:
        fleet.rejected(location, len(unassigned))
        metrics.probe_results.labels(location, "unassigned").inc(len(unassigned))
        message = f"{len(unassigned)} result(s) for monitors not assigned to {location}; none taken"
        # The ids let the agent drop exactly those (e.g. after a monitor moved) and resend.
        return JSONResponse(
            {"error": {"code": "forbidden", "message": message}, "rejected": unassigned},
            status_code=403,
        )
    shift = offset if skewed else 0  # correct a wrong clock by what it is off now
    # agents redact with the default keys; the hub adds security.secret_query_keys
    redactor = Redactor.with_keys(runtime.config.security.secret_query_keys)
    results = [
        Result(
            r.id,
            r.monitor,
            location,
            r.at + shift,
            r.ok,
            r.latency_ms,
            r.error,
            redactor.text(r.message),
            r.degraded and not r.ok,
        )
        for r in batch.results
    ]
    report = Report(
        version=batch.agent.version,
        address=request.client.host if request.client else None,
        queue_depth=batch.agent.queue_depth,
        degraded=batch.agent.degraded,
        canaries=[c.model_dump() for c in batch.agent.canaries],
        dropped=[
            Gap(location, g.monitor, g.first_at + shift, g.last_at + shift, g.count, g.failures)
            for g in batch.agent.dropped
        ],
    )
    work = fleet.contact(location, report, offset)
    work.results = results
    await runtime.ingest.submit_work(work)
    duplicates = len(results) - work.fresh
    metrics.probe_results.labels(location, "accepted").inc(work.fresh)
    if duplicates:
        metrics.probe_results.labels(location, "duplicate").inc(duplicates)
    return BatchOut(
        accepted=work.fresh, duplicates=duplicates, clock_offset_ms=offset, corrected=skewed
    )


@router.get(
    "",
    response_model=ProbeList,
    dependencies=[Depends(require_admin)],
    responses={401: {"model": ErrorOut}},
)
async def list_probes(request: Request) -> ProbeList:
    """Every location with its health; `local` is the hub's embedded probe."""
    runtime = runtime_of(request)
    probes = [
        ProbeOut(
            name="local",
            state="up",
            since=iso(runtime.started_at),
            last_contact=iso(runtime.clock.now_ms()),
            version=None,
            address=None,
            clock_offset_ms=0,
            queue_depth=runtime.ingest.pending,
            dropped_total=0,
            rejected_total=0,
            canaries=[],
            monitors=len(runtime.probe.scheduler),
        )
    ]
    probes.extend(
        ProbeOut(
            name=row.name,
            state=row.state,
            since=iso(row.since),
            last_contact=iso(row.last_contact_at),
            version=row.version,
            address=row.address,
            clock_offset_ms=row.clock_offset_ms,
            queue_depth=row.queue_depth,
            dropped_total=row.dropped_total,
            rejected_total=row.rejected_total,
            canaries=[CanaryOut(**c) for c in row.canaries],
            monitors=len(runtime.fleet.assigned(row.name)),
        )
        for row in runtime.fleet.statuses()
    )
    return ProbeList(probes=probes)
