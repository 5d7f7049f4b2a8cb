"""One incident, the commander's screen: its clocks, updates with status transitions and the
subscribers' preview, the runbook checklist and the postmortem, through the incident desk."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from starlette.datastructures import FormData
from starlette.responses import Response

from uptally import markdown
from uptally.incidents.model import UPDATE_STATUSES, Impact, Status
from uptally.incidents.transitions import Components, IncidentError
from uptally.notify.desk import NotFound, rules_for
from uptally.status import ComponentStatus
from uptally.web.console import render
from uptally.web.console.incidents_view import affected_names, clocks, subscriber_preview
from uptally.web.console.routes_incidents import NOTICES, IncidentId, desk_of, see, text
from uptally.web.console.session import Responder, Viewer, principal
from uptally.web.deps import runtime_of

router = APIRouter(prefix="/console/incidents", include_in_schema=False)
STATUSES = [ComponentStatus(s) for s in ComponentStatus if s != ComponentStatus.UNDER_MAINTENANCE]


async def _detail(
    request: Request, signed: Any, incident_id: str, status: int = 200, **extra: Any
) -> Response:
    runtime = runtime_of(request)
    config, now = runtime.config, runtime.clock.now_ms()
    try:
        detail = await desk_of(request).detail(incident_id)
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
    message, chosen = text(form, "message"), text(form, "status")
    typed: dict[str, Any] = {"update_status": chosen, "update_message": message}
    try:
        status = Status(chosen)
        components = _update_components(form)
        impact = Impact(text(form, "impact")) if text(form, "impact") else None
    except ValueError:
        return await _detail(
            request, signed, incident_id, 422, update_error="Choose a status.", **typed
        )
    desk = desk_of(request)
    try:
        if text(form, "action") == "preview":
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
    return see(f"/console/incidents/{incident_id}", "posted")


@router.post("/{incident_id}/steps/{position}")
async def check_step(
    request: Request,
    signed: Responder,
    incident_id: IncidentId,
    position: Annotated[int, Path(ge=1, le=10_000)],
) -> Response:
    form = await request.form()
    try:
        await desk_of(request).check_step(
            incident_id, position, text(form, "done") == "1", principal(signed).actor
        )
    except NotFound:
        return await _detail(request, signed, incident_id, 404)
    return see(f"/console/incidents/{incident_id}", "step")


@router.post("/{incident_id}/runbook")
async def attach_runbook(request: Request, signed: Responder, incident_id: IncidentId) -> Response:
    form = await request.form()
    try:
        await desk_of(request).attach_runbook(
            incident_id, text(form, "template"), principal(signed).actor
        )
    except (IncidentError, NotFound) as error:
        return await _detail(request, signed, incident_id, 422, update_error=str(error))
    return see(f"/console/incidents/{incident_id}", "runbook")


@router.post("/{incident_id}/postmortem")
async def postmortem(request: Request, signed: Responder, incident_id: IncidentId) -> Response:
    """Preview (rendered, not saved), save the draft, or save and publish the postmortem."""
    form = await request.form()
    body, action = text(form, "body"), text(form, "action")
    if action == "preview":
        shown = markdown.render(body)
        return await _detail(
            request, signed, incident_id, postmortem_body=body, postmortem_preview=shown
        )
    desk, actor = desk_of(request), principal(signed).actor
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
    return see(f"/console/incidents/{incident_id}", "published" if action == "publish" else "saved")
