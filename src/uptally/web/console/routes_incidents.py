"""The commander's screen: incidents with their clocks, declaring from an outage, updates,
the runbook checklist and the postmortem, through the incident desk the API uses."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from starlette.datastructures import FormData
from starlette.responses import RedirectResponse, Response

from uptally import markdown
from uptally.clock import iso
from uptally.incidents.model import UPDATE_STATUSES, Impact, Status
from uptally.incidents.texts import format_duration, format_time
from uptally.incidents.transitions import Components, IncidentError
from uptally.notify.desk import Desk, NotFound, rules_for
from uptally.status import ComponentStatus
from uptally.store import commitments as commitment_store
from uptally.store import incidents as store
from uptally.web.console import render
from uptally.web.console.incidents_view import (
    affected_names,
    clocks,
    open_outages,
    outage_draft,
    subscriber_preview,
)
from uptally.web.console.session import Responder, Viewer, principal
from uptally.web.deps import runtime_of

router = APIRouter(prefix="/console/incidents", include_in_schema=False)
IncidentId = Annotated[str, Path(max_length=64)]  # an unknown one: a 404 page
PAGE = 20
STATUSES = [ComponentStatus(s) for s in ComponentStatus if s != ComponentStatus.UNDER_MAINTENANCE]
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


def _desk(request: Request) -> Desk:
    return runtime_of(request).notifier.desk


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def _see(path: str, done: str) -> Response:
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
    outage = next((o for o in found if o.outage.id == _text(form, "outage")), None)
    if outage is None:
        return await _new_form(request, signed, {}, "That outage has ended or is not verified.")
    if outage.incident is not None:
        return _see(f"/console/incidents/{outage.incident.id}", "declared")
    worded = outage_draft(outage.outage, runtime.config, now)
    try:
        incident = await _desk(request).declare(
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
    return _see(f"/console/incidents/{incident.id}", "declared")


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
        name: _text(form, name)
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
        incident = await _desk(request).declare(
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
    return _see(f"/console/incidents/{incident.id}", "declared")


async def _detail(
    request: Request, signed: Any, incident_id: str, status: int = 200, **extra: Any
) -> Response:
    runtime = runtime_of(request)
    config, now = runtime.config, runtime.clock.now_ms()
    try:
        detail = await _desk(request).detail(incident_id)
    except NotFound:
        return await render.page(
            request, signed, "message.html", status=404, title="Not found",
            message=f"There is no incident {incident_id}.",
        )  # fmt: skip
    incident = detail.incident
    phases: dict[str, list[Any]] = {}
    for step in detail.steps:
        phases.setdefault(step.phase, []).append(step)
    values: dict[str, Any] = {
        "update_status": incident.status.value if incident.status.open else "resolved",
        "update_message": "",
        "postmortem_body": detail.postmortem.body if detail.postmortem else "",
        "preview": None,
        "postmortem_preview": None,
        "update_error": "",
        "postmortem_error": "",
        **extra,
    }
    if values["preview"] is None and incident.status.open:
        values["preview"] = subscriber_preview(
            config, incident, Status(values["update_status"]), "", None, now
        )
    return await render.page(
        request,
        signed,
        "incidents_detail.html",
        nav="incidents",
        status=status,
        incident=incident,
        detail=detail,
        phases=phases,
        clocks=clocks(detail.commitments, now, rules_for(config), config.site.timezone),
        components=config.components,
        component_statuses=STATUSES,
        statuses=UPDATE_STATUSES,
        impacts=list(Impact),
        runbooks=sorted(config.incidents.runbooks),
        names=lambda components: affected_names(components, config),
        tz=config.site.timezone,
        notice=NOTICES.get(request.query_params.get("done", "")),
        **values,
    )


@router.get("/{incident_id}")
async def incident_page(request: Request, signed: Viewer, incident_id: IncidentId) -> Response:
    return await _detail(request, signed, incident_id)


def _update_components(form: FormData) -> Components:
    chosen: dict[str, ComponentStatus | None] = {}
    for key, value in form.multi_items():
        if key.startswith("component:") and isinstance(value, str) and value:
            chosen[key.removeprefix("component:")] = ComponentStatus(value)
    return chosen


@router.post("/{incident_id}/update")
async def post_update(request: Request, signed: Responder, incident_id: IncidentId) -> Response:
    """Post an update (its status moves the incident), or preview what subscribers receive."""
    runtime = runtime_of(request)
    form = await request.form()
    message, chosen = _text(form, "message"), _text(form, "status")
    typed: dict[str, Any] = {"update_status": chosen, "update_message": message}
    try:
        status = Status(chosen)
        components = _update_components(form)
        impact = Impact(_text(form, "impact")) if _text(form, "impact") else None
    except ValueError:
        return await _detail(
            request, signed, incident_id, 422, update_error="Choose a status.", **typed
        )
    desk = _desk(request)
    try:
        if _text(form, "action") == "preview":
            incident = (await desk.detail(incident_id)).incident
            now = runtime.clock.now_ms()
            preview = subscriber_preview(runtime.config, incident, status, message, components, now)
            return await _detail(request, signed, incident_id, preview=preview, **typed)
        actor = principal(signed).actor
        current = (await desk.detail(incident_id)).incident
        if not message.strip():
            raise IncidentError("an update needs a message")
        if impact is not None and impact is not current.impact:
            await desk.edit(incident_id, actor=actor, impact=impact)
        await desk.post_update(
            incident_id, status=status, message=message, components=components, actor=actor
        )
    except NotFound:
        return await _detail(request, signed, incident_id)
    except IncidentError as error:
        return await _detail(request, signed, incident_id, 422, update_error=str(error), **typed)
    return _see(f"/console/incidents/{incident_id}", "posted")


@router.post("/{incident_id}/steps/{position}")
async def check_step(
    request: Request,
    signed: Responder,
    incident_id: IncidentId,
    position: Annotated[int, Path(ge=1, le=10_000)],
) -> Response:
    form = await request.form()
    try:
        await _desk(request).check_step(
            incident_id, position, _text(form, "done") == "1", principal(signed).actor
        )
    except NotFound:
        return await _detail(request, signed, incident_id, 404)
    return _see(f"/console/incidents/{incident_id}", "step")


@router.post("/{incident_id}/runbook")
async def attach_runbook(request: Request, signed: Responder, incident_id: IncidentId) -> Response:
    form = await request.form()
    try:
        await _desk(request).attach_runbook(
            incident_id, _text(form, "template"), principal(signed).actor
        )
    except (IncidentError, NotFound) as error:
        return await _detail(request, signed, incident_id, 422, update_error=str(error))
    return _see(f"/console/incidents/{incident_id}", "runbook")


@router.post("/{incident_id}/postmortem")
async def postmortem(request: Request, signed: Responder, incident_id: IncidentId) -> Response:
    """Preview (rendered, not saved), save the draft, or save and publish the postmortem."""
    form = await request.form()
    body, action = _text(form, "body"), _text(form, "action")
    if action == "preview":
        shown = markdown.render(body)
        return await _detail(
            request, signed, incident_id, postmortem_body=body, postmortem_preview=shown
        )
    desk, actor = _desk(request), principal(signed).actor
    try:
        if not body.strip():
            raise IncidentError("write the postmortem first")
        await desk.write_postmortem(incident_id, body, actor)
        if action == "publish":
            await desk.publish_postmortem(incident_id, actor)
    except NotFound:
        return await _detail(request, signed, incident_id, 404)
    except IncidentError as error:
        return await _detail(
            request, signed, incident_id, 422, postmortem_body=body, postmortem_error=str(error)
        )
    return _see(
        f"/console/incidents/{incident_id}", "published" if action == "publish" else "saved"
    )
