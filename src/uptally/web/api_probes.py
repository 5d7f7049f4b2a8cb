"""Probe agents' API (assignments, result batches) and the admin view of probe locations."""

from __future__ import annotations

import logging
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import AfterValidator, Field, model_validator

from uptally.clock import EARLIEST_MS, LATEST_MS, Millis, iso
from uptally.config.schema import ID_PATTERN
from uptally.fleet import Report
from uptally.ingest import RefusedWork
from uptally.redaction import Redactor
from uptally.results import Result
from uptally.store.probes import Gap
from uptally.web.auth import client_of, refuse_if_limited, require_admin
from uptally.web.deps import runtime_of
from uptally.web.errors import ApiError
from uptally.web.ratelimit import FailureLimiter
from uptally.web.schemas import ErrorOut, Model

log = logging.getLogger(__name__)

ASSIGNMENT_POLL_S = 30
MAX_RUNS_WAIT_S = 30.0  # an agent's long poll for run requests: under usual proxy timeouts
MAX_BATCH = 5000
MAX_COUNT = 1_000_000_000  # queue depth, dropped results per gap: far above any real queue
MAX_LATENCY_MS = 86_400_000.0  # a day: no check waits that long
_CHALLENGE = {"WWW-Authenticate": "Bearer"}

router = APIRouter(prefix="/api/v1/probes", tags=["probes"])


# -- shapes ------------------------------------------------------------------------------------


def _storable(value: str) -> str:
    """Text a database stores as sent: no NUL (PostgreSQL refuses it) and no lone surrogates
    (they cannot be encoded as UTF-8)."""
    if "\x00" in value:
        raise ValueError("must not contain NUL characters")
    if any("\ud800" <= ch <= "\udfff" for ch in value):
        raise ValueError("must not contain lone surrogates (invalid Unicode)")
    return value


Text = Annotated[str, AfterValidator(_storable)]
Name = Annotated[str, Field(pattern=ID_PATTERN)]
Time = Annotated[int, Field(ge=EARLIEST_MS, le=LATEST_MS)]  # ms since the epoch (agent clock)
Count = Annotated[int, Field(ge=0, le=MAX_COUNT)]


class ResultIn(Model):
    id: str = Field(pattern=r"^[!-~]{1,40}$", description="unique per result (printable ASCII)")
    monitor: Name
    at: Time = Field(description="when the check started, ms since the epoch (agent clock)")
    ok: bool
    latency_ms: float | None = Field(default=None, ge=0, le=MAX_LATENCY_MS, allow_inf_nan=False)
    error: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_.:-]{1,32}$")
    message: Text = Field(default="", max_length=4000)
    degraded: bool = False


class GapIn(Model):
    monitor: Name
    first_at: Time
    last_at: Time
    count: Count = Field(ge=1)
    failures: Count

    @model_validator(mode="after")
    def _consistent(self) -> GapIn:
        if self.last_at < self.first_at:
            raise ValueError("last_at is before first_at")
        if self.failures > self.count:
            raise ValueError("failures exceed count")
        return self


class CanaryIn(Model):
    target: Text = Field(max_length=500)
    ok: bool
    error: Text | None = Field(default=None, max_length=500)


class AgentIn(Model):
    version: str | None = Field(default=None, pattern=r"^[!-~]{1,64}$")
    queue_depth: Count | None = None
    degraded: bool = False
    canaries: list[CanaryIn] = Field(default_factory=list, max_length=50)
    dropped: list[GapIn] = Field(default_factory=list, max_length=10_000)


class ResultBatch(Model):
    location: Name
    sent_at: Time = Field(description="the agent's clock when it sent the batch (ms)")
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


class RunOut(Model):
    id: str = Field(description="the id the result of this run must carry")
    monitor: dict[str, Any] = Field(description="the monitor, as in assignments")


class RunList(Model):
    runs: list[RunOut]


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
    """The location whose probe token the request carries; 401 without one, 429 after too many
    wrong tokens from this client address (`security.auth_failures` per `auth_window`)."""
    limiter: FailureLimiter = request.app.state.probe_limiter
    client = client_of(request)
    refuse_if_limited(limiter, client, "too many wrong probe tokens from this address")
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise ApiError(401, "missing bearer token (the location's probe token)", headers=_CHALLENGE)
    runtime = runtime_of(request)
    location = runtime.fleet.authenticate(token.strip())
    if location is None:
        limiter.fail(client)
        log.warning("refused a probe token from %s", client)
        raise ApiError(401, "invalid probe token", headers=_CHALLENGE)
    rejected = runtime.metrics.probe_batches_rejected
    request.state.on_invalid = lambda: rejected.labels(location, "invalid").inc()
    return location


Location = Annotated[str, Depends(require_location)]


def _still_there(request: Request, location: str) -> None:
    """401 for a location deleted (through the API) since its token was checked."""
    if not runtime_of(request).fleet.knows(location):
        raise ApiError(401, "invalid probe token", headers=_CHALLENGE)


_AGENT_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": ErrorOut},
    401: {"model": ErrorOut},
    403: {"model": ErrorOut},
    413: {"model": ErrorOut},
    422: {"model": ErrorOut},
    429: {"model": ErrorOut},
}


# -- routes ------------------------------------------------------------------------------------


@router.get("/assignments", response_model=AssignmentOut, responses={304: {}, **_AGENT_ERRORS})
async def assignments(request: Request, location: Location) -> Response:
    """The monitors this location runs; answers 304 while If-None-Match is current."""
    _still_there(request, location)
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


@router.get("/runs", response_model=RunList, responses=_AGENT_ERRORS)
async def runs(
    request: Request,
    location: Location,
    wait: Annotated[float, Query(ge=0, le=MAX_RUNS_WAIT_S)] = 0,
) -> RunList:
    """Monitors to run once now ("check now"), waiting up to `wait` seconds for some (a long
    poll: an agent keeps one waiting). Push each run's result like any other, with the run's
    `id` as the result's id: that is how the hub knows it is the answer."""
    taken = await runtime_of(request).fleet.runs.take(location, wait)
    return RunList(runs=[RunOut(id=r.id, monitor=r.monitor) for r in taken])


@router.post("/results", response_model=BatchOut, responses=_AGENT_ERRORS)
async def push_results(request: Request, batch: ResultBatch, location: Location) -> Any:
    """Ingest a batch of results (idempotent by result id) with the agent's report."""
    _still_there(request, location)
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
        metrics.probe_batches_rejected.labels(location, "clock_skew").inc()
        raise ApiError(
            422,
            f"the probe's clock is {offset / 1000:+.1f}s off the hub's (more than "
            f"{settings.max_clock_skew / 1000:g}s): fix its time (NTP); results refused",
            "clock_skew",
        )
    problems = out_of_range(batch, now, settings.max_clock_skew, settings.max_result_age)
    if problems:
        metrics.probe_batches_rejected.labels(location, "out_of_range").inc()
        raise ApiError(
            422,
            "; ".join(f"{p['path']}: {p['message']}" for p in problems[:3]),
            "out_of_range",
            details=problems,
        )
    assigned = fleet.assigned(location)
    unassigned = [r.id for r in batch.results if r.monitor not in assigned]
    if unassigned:
        fleet.rejected(location, len(unassigned))
        metrics.probe_results.labels(location, "unassigned").inc(len(unassigned))
        metrics.probe_batches_rejected.labels(location, "unassigned").inc()
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
    try:
        work = await fleet.push(location, report, offset, results)
    except RefusedWork as refused:
        metrics.probe_batches_rejected.labels(location, "store").inc()
        raise ApiError(422, str(refused), "unstorable") from None
    duplicates = len(results) - work.fresh
    metrics.probe_results.labels(location, "accepted").inc(work.fresh)
    if duplicates:
        metrics.probe_results.labels(location, "duplicate").inc(duplicates)
    return BatchOut(
        accepted=work.fresh, duplicates=duplicates, clock_offset_ms=offset, corrected=skewed
    )


def out_of_range(
    batch: ResultBatch, now: Millis, max_skew: Millis, max_age: Millis
) -> list[dict[str, str]]:
    """What in a batch is outside the times a working agent can send (as JSON pointers).

    `sent_at` may be off the hub's clock by up to `max_age` (more is a broken clock, not one
    to correct); results and gaps lie between `max_age` before `sent_at` (the longest an agent
    queues) and `max_skew` after it (its clock may step back between a check and the send)."""
    if abs(now - batch.sent_at) > max_age:
        off = f"{(batch.sent_at - now) / 1000:+.0f}s"
        return [{"path": "/sent_at", "message": f"the probe's clock is {off} off the hub's"}]
    earliest, latest = batch.sent_at - max_age, batch.sent_at + max_skew
    window = f"outside [sent_at - {max_age // 1000}s, sent_at + {max_skew // 1000}s]"
    problems = [
        {"path": f"/results/{i}/at", "message": window}
        for i, r in enumerate(batch.results)
        if not earliest <= r.at <= latest
    ]
    problems.extend(
        {"path": f"/agent/dropped/{i}/{name}", "message": window}
        for i, gap in enumerate(batch.agent.dropped)
        for name in ("first_at", "last_at")
        if not earliest <= getattr(gap, name) <= latest
    )
    return problems[:20]


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
