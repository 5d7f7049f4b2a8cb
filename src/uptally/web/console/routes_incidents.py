"""The incidents list (open ones with their clocks, outages without an incident, resolved ones)
and declaring an incident, from an outage in one click or by the form, through the incident
desk the API uses. One incident's page is in `routes_incident`."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from starlette.datastructures import FormData
from starlette.responses import RedirectResponse, Response

from uptally.clock import iso
from uptally.incidents.model import UPDATE_STATUSES, Impact, Status
from uptally.incidents.texts import format_duration, format_time
from uptally.incidents.transitions import IncidentError
from uptally.notify.desk import Desk, rules_for
from uptally.store import commitments as commitment_store
from uptally.store import incidents as store
from uptally.web.console import render
from uptally.web.console.incidents_view import (
    affected_names,
    clocks,
    open_outages,
    outage_draft,
)
from uptally.web.console.session import Responder, Viewer, principal
from uptally.web.deps import runtime_of

router = APIRouter(prefix="/console/incidents", include_in_schema=False)
IncidentId = Annotated[str, Path(max_length=64)]  # an unknown one: a 404 page
PAGE = 20
NOTICES = {
    "declared": "Incident declared.",
    "posted": "Update posted: it is on the status page and on its way to subscribers.",
    "step": "Runbook updated.",
    "runbook": "Runbook attached.",
    "saved": "Postmortem draft saved.",
    "published": "Postmortem published.",
}


render.ENV.filters.update(
    fmt_time=lambda at, tz: format_time(at, tz) if at is not None else "",
    fmt_duration=format_duration,
    iso=iso,
)


def desk_of(request: Request) -> Desk:
    return runtime_of(request).notifier.desk


def text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def see(path: str, done: str) -> Response:
    return RedirectResponse(f"{path}?done={done}", status_code=303)


@router.get("")
async def incidents(request: Request, signed: Viewer, page: int = 1) -> Response:
    runtime = runtime_of(request)
    config, now = runtime.config, runtime.clock.now_ms()
    page = max(1, min(page, 25))
    async with runtime.db.connect() as conn:
        open_ = await store.find_incidents(conn, unresolved_only=True, limit=200)
        resolved = await store.find_incidents(conn, resolved_only=True, limit=page * PAGE + 1)
        pending = await commitment_store.load_commitments(conn, unfulfilled=True)
        outages = await open_outages(conn, config, now, open_)
    rules, tz = rules_for(config), config.site.timezone
    by_incident: dict[str, list[Any]] = {}
    for commitment in pending:
        by_incident.setdefault(commitment.incident, []).append(commitment)
    shown = resolved[(page - 1) * PAGE : page * PAGE]
    return await render.page(
        request,
        signed,
        "incidents_list.html",
        nav="incidents",
        open_incidents=open_,
        resolved=shown,
        page=page,
        more=len(resolved) > page * PAGE,
        clocks={i: clocks(c, now, rules, tz) for i, c in by_incident.items()},
        outages=[o for o in outages if o.incident is None],
        names=lambda components: affected_names(components, config),
        tz=tz,
        notice=NOTICES.get(request.query_params.get("done", "")),
    )


@router.post("/declare")
async def declare_from_outage(request: Request, signed: Responder) -> Response:
    """One click: declare the incident the template words for an open outage."""
    runtime = runtime_of(request)
    form = await request.form()
    now = runtime.clock.now_ms()
    async with runtime.db.connect() as conn:
        open_ = await store.open_incidents(conn)
        found = await open_outages(conn, runtime.config, now, open_)
    outage = next((o for o in found if o.outage.id == text(form, "outage")), None)
    if outage is None:
        return await _new_form(request, signed, {}, "That outage has ended or is not verified.")
    if outage.incident is not None:
        return see(f"/console/incidents/{outage.incident.id}", "declared")
    worded = outage_draft(outage.outage, runtime.config, now)
    try:
        incident = await desk_of(request).declare(
            title=worded.title,
            status=Status.INVESTIGATING,
            impact=worded.impact,
            components=worded.components,
            message=worded.message,
            actor=principal(signed).actor,
            started_at=worded.started_at,
            runbook=worded.runbook,
            outages={outage.outage.monitor: outage.outage.id},
        )
    except IncidentError as error:
        return await _new_form(request, signed, {}, str(error))
    return see(f"/console/incidents/{incident.id}", "declared")


async def _new_form(
    request: Request, signed: Any, values: dict[str, Any], error: str = "", status: int = 422
) -> Response:
    config = runtime_of(request).config
    return await render.page(
        request,
        signed,
        "incidents_new.html",
        nav="incidents",
        status=status if error else 200,
        values=values,
        form_error=error,
        components=config.components,
        impacts=list(Impact),
        statuses=UPDATE_STATUSES,
        runbooks=sorted(config.incidents.runbooks),
    )


@router.get("/new")
async def new_incident(request: Request, signed: Responder, outage: str = "") -> Response:
    """The declaration form, pre-filled from an open outage when one is named."""
    runtime = runtime_of(request)
    values: dict[str, Any] = {"impact": "major", "status": "investigating", "components": []}
    if outage:
        now = runtime.clock.now_ms()
        async with runtime.db.connect() as conn:
            found = await open_outages(conn, runtime.config, now, [])
        match = next((o for o in found if o.outage.id == outage), None)
        if match is not None:
            worded = outage_draft(match.outage, runtime.config, now)
            values = {
                "title": worded.title,
                "impact": worded.impact.value,
                "status": "investigating",
                "components": list(worded.components),
                "message": worded.message,
                "runbook": worded.runbook or "",
                "outage": outage,
            }
    return await _new_form(request, signed, values)


@router.post("/new")
async def declare_incident(request: Request, signed: Responder) -> Response:
    runtime = runtime_of(request)
    form = await request.form()
    values: dict[str, Any] = {
        name: text(form, name)
        for name in ("title", "impact", "status", "message", "runbook", "outage")
    }
    values["components"] = [c for c in form.getlist("components") if isinstance(c, str)]
    try:
        impact, status = Impact(values["impact"]), Status(values["status"])
    except ValueError:
        return await _new_form(request, signed, values, "Choose an impact and a status.")
    outages: dict[str, str] = {}
    if values["outage"]:
        async with runtime.db.connect() as conn:
            found = await open_outages(conn, runtime.config, runtime.clock.now_ms(), [])
        outages = {o.outage.monitor: o.outage.id for o in found if o.outage.id == values["outage"]}
    try:
        incident = await desk_of(request).declare(
            title=values["title"],
            status=status,
            impact=impact,
            components=dict.fromkeys(values["components"]),
            message=values["message"] or None,
            actor=principal(signed).actor,
            runbook=values["runbook"] or None,
            outages=outages,
        )
    except IncidentError as error:
        return await _new_form(request, signed, values, str(error))
    return see(f"/console/incidents/{incident.id}", "declared")
