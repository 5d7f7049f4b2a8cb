"""Admin API: incidents (declare, update, edit), postmortems, runbooks and commitments."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Path, Query, Request

from uptally.clock import Millis, iso
from uptally.config.schema import ID_PATTERN
from uptally.incidents.commitments import Commitment
from uptally.incidents.model import Incident, Postmortem, RunbookStep, Status, Update
from uptally.incidents.transitions import Components, IncidentError
from uptally.notify.desk import Desk, Detail, NotFound
from uptally.notify.render import link
from uptally.status import ComponentStatus
from uptally.store import commitments as commitment_store
from uptally.store import incidents as store
from uptally.web.auth import principal_of, require_responder
from uptally.web.deps import TimeParam, millis, runtime_of
from uptally.web.errors import ApiError
from uptally.web.schemas import ErrorOut
from uptally.web.schemas_incidents import (
    CommitmentList,
    CommitmentOut,
    ComponentOut,
    IncidentIn,
    IncidentList,
    IncidentOut,
    IncidentPatch,
    PostmortemIn,
    PostmortemOut,
    RunbookIn,
    RunbookOut,
    StepIn,
    StepOut,
    UpdateIn,
    UpdateOut,
)

IncidentId = Annotated[str, Path(pattern=r"^[0-9a-f]{26}$")]
_EARLIEST: Millis = 946_684_800_000  # 2000-01-01: an earlier start is surely a typo

router = APIRouter(
    prefix="/api/v1",
    tags=["incidents"],
    dependencies=[Depends(require_responder)],
    responses={
        400: {"model": ErrorOut},
        401: {"model": ErrorOut},
        403: {"model": ErrorOut},
        404: {"model": ErrorOut},
        409: {"model": ErrorOut},
        413: {"model": ErrorOut},
        422: {"model": ErrorOut},
        429: {"model": ErrorOut},
    },
)


def _desk(request: Request) -> Desk:
    return runtime_of(request).notifier.desk


def _components(
    given: list[str] | dict[str, ComponentStatus] | None,
) -> Components | None:
    if given is None:
        return None
    if isinstance(given, list):
        return dict.fromkeys(given)
    return dict(given)


def _time(ms: Millis) -> str:
    return iso(ms) or ""


def update_out(item: Update) -> UpdateOut:
    return UpdateOut(
        id=item.id,
        status=item.status,
        body=item.body,
        body_html=item.body_html,
        components=dict(sorted(item.components.items())),
        created_at=_time(item.created_at),
        author=item.author,
        automatic=item.automatic,
    )


def postmortem_out(item: Postmortem) -> PostmortemOut:
    return PostmortemOut(
        state="published" if item.published_at is not None else "draft",
        body=item.body,
        body_html=item.body_html,
        created_at=_time(item.created_at),
        updated_at=_time(item.updated_at),
        published_at=iso(item.published_at),
        author=item.author,
    )


def step_out(step: RunbookStep) -> StepOut:
    return StepOut(
        position=step.position,
        phase=step.phase,
        title=step.title,
        done=step.done_at is not None,
        done_at=iso(step.done_at),
        done_by=step.done_by,
    )


def commitment_out(item: Commitment) -> CommitmentOut:
    return CommitmentOut(
        id=item.id,
        incident=item.incident,
        kind=item.kind,
        state=item.state,
        opened_at=_time(item.opened_at),
        due_at=_time(item.due_at),
        met_at=iso(item.met_at),
        reminded_at=iso(item.reminded_at),
        overdue_at=iso(item.overdue_at),
    )


def incident_out(
    request: Request, incident: Incident, updates: list[Update], detail: Detail | None = None
) -> IncidentOut:
    config = runtime_of(request).config
    out = IncidentOut(
        id=incident.id,
        title=incident.title,
        status=incident.status,
        impact=incident.impact,
        components=[
            ComponentOut(id=k, status=a.status, worst=a.worst)
            for k, a in sorted(incident.components.items())
        ],
        created_at=_time(incident.created_at),
        updated_at=_time(incident.updated_at),
        started_at=_time(incident.started_at),
        identified_at=iso(incident.identified_at),
        monitoring_at=iso(incident.monitoring_at),
        resolved_at=iso(incident.resolved_at),
        created_by=incident.created_by,
        automatic=incident.automatic,
        automated=incident.automated,
        url=link(config, f"/incidents/{incident.id}"),
        updates=[update_out(u) for u in updates],
    )
    if detail is not None:
        out.postmortem = postmortem_out(detail.postmortem) if detail.postmortem else None
        out.runbook = RunbookOut(
            template=incident.runbook, steps=[step_out(s) for s in detail.steps]
        )
        out.commitments = [commitment_out(c) for c in detail.commitments]
    return out


async def _detail_out(request: Request, incident_id: str) -> IncidentOut:
    try:
        detail = await _desk(request).detail(incident_id)
    except NotFound as error:
        raise ApiError(404, str(error)) from None
    return incident_out(request, detail.incident, detail.updates, detail)


def _started(value: str | None) -> Millis | None:
    started = millis(value, "started_at")
    if started is not None and started < _EARLIEST:
        raise ApiError(422, "started_at: before 2000, surely a typo")
    return started


def _refused(error: Exception) -> ApiError:
    if isinstance(error, NotFound):
        return ApiError(404, str(error))
    return ApiError(422, str(error))


@router.get("/incidents", response_model=IncidentList)
async def list_incidents(
    request: Request,
    status: Literal["open", "resolved", "all"] = "all",
    component: Annotated[str | None, Query(pattern=ID_PATTERN)] = None,
    since: TimeParam = None,
    until: TimeParam = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> IncidentList:
    """Incidents newest first; `since`/`until` select those active in between."""
    runtime = runtime_of(request)
    async with runtime.db.connect() as conn:
        found = await store.find_incidents(
            conn,
            since=millis(since, "since"),
            until=millis(until, "until"),
            unresolved_only=status == "open",
            resolved_only=status == "resolved",
            component=component,
            limit=limit,
        )
        updates: dict[str, list[Update]] = {}
        for item in await store.load_updates(conn, [i.id for i in found]):
            updates.setdefault(item.incident, []).append(item)
    return IncidentList(incidents=[incident_out(request, i, updates.get(i.id, [])) for i in found])


@router.post("/incidents", response_model=IncidentOut, status_code=201)
async def create_incident(request: Request, body: IncidentIn) -> IncidentOut:
    """Declare an incident; with a message, that is its first public update."""
    components = _components(body.components) or {}
    try:
        incident = await _desk(request).declare(
            title=body.title,
            status=Status(body.status),
            impact=body.impact,
            components=components,
            message=body.message,
            actor=principal_of(request).actor,
            started_at=_started(body.started_at),
            runbook=body.runbook,
        )
    except (IncidentError, OverflowError) as error:
        raise _refused(error) from None
    return await _detail_out(request, incident.id)


@router.get("/incidents/{incident_id}", response_model=IncidentOut)
async def get_incident(request: Request, incident_id: IncidentId) -> IncidentOut:
    """An incident with its timeline, postmortem (also a draft), runbook and commitments."""
    return await _detail_out(request, incident_id)


@router.patch("/incidents/{incident_id}", response_model=IncidentOut)
async def edit_incident(
    request: Request, incident_id: IncidentId, body: IncidentPatch
) -> IncidentOut:
    """Correct the title, impact, components or start (no notification is sent)."""
    try:
        await _desk(request).edit(
            incident_id,
            actor=principal_of(request).actor,
            title=body.title,
            impact=body.impact,
            components=_components(body.components),
            started_at=_started(body.started_at),
        )
    except (IncidentError, NotFound) as error:
        raise _refused(error) from None
    return await _detail_out(request, incident_id)


@router.post("/incidents/{incident_id}/updates", response_model=IncidentOut, status_code=201)
async def post_update(request: Request, incident_id: IncidentId, body: UpdateIn) -> IncidentOut:
    """A public update (Markdown); its status moves the incident (or reopens a resolved one)."""
    try:
        await _desk(request).post_update(
            incident_id,
            status=Status(body.status) if body.status else None,
            message=body.message,
            components=_components(body.components),
            actor=principal_of(request).actor,
        )
    except (IncidentError, NotFound) as error:
        raise _refused(error) from None
    return await _detail_out(request, incident_id)


@router.put("/incidents/{incident_id}/postmortem", response_model=PostmortemOut)
async def write_postmortem(
    request: Request, incident_id: IncidentId, body: PostmortemIn
) -> PostmortemOut:
    """Save the postmortem (a draft until published; operators only see drafts)."""
    try:
        written = await _desk(request).write_postmortem(
            incident_id, body.body, principal_of(request).actor
        )
    except (IncidentError, NotFound) as error:
        raise _refused(error) from None
    return postmortem_out(written)


@router.post("/incidents/{incident_id}/postmortem/publish", response_model=PostmortemOut)
async def publish_postmortem(request: Request, incident_id: IncidentId) -> PostmortemOut:
    """Publish the postmortem of a resolved incident: it shows on the page and in feeds."""
    try:
        published = await _desk(request).publish_postmortem(
            incident_id, principal_of(request).actor
        )
    except NotFound as error:
        raise ApiError(404, str(error)) from None
    except IncidentError as error:
        raise ApiError(409, str(error)) from None
    return postmortem_out(published)


@router.post("/incidents/{incident_id}/runbook", response_model=RunbookOut)
async def attach_runbook(request: Request, incident_id: IncidentId, body: RunbookIn) -> RunbookOut:
    """Attach a runbook checklist from a template in the config (replaces an earlier one)."""
    try:
        steps = await _desk(request).attach_runbook(
            incident_id, body.template, principal_of(request).actor
        )
    except (IncidentError, NotFound) as error:
        raise _refused(error) from None
    return RunbookOut(template=body.template, steps=[step_out(s) for s in steps])


@router.put("/incidents/{incident_id}/runbook/steps/{position}", response_model=RunbookOut)
async def check_step(
    request: Request,
    incident_id: IncidentId,
    position: Annotated[int, Path(ge=1, le=10_000)],
    body: StepIn,
) -> RunbookOut:
    """Tick (or untick) a runbook step; who and when are recorded."""
    desk = _desk(request)
    try:
        steps = await desk.check_step(incident_id, position, body.done, principal_of(request).actor)
        incident = (await desk.detail(incident_id)).incident
    except NotFound as error:
        raise ApiError(404, str(error)) from None
    return RunbookOut(template=incident.runbook, steps=[step_out(s) for s in steps])


@router.get("/commitments", response_model=CommitmentList, tags=["incidents"])
async def list_commitments(
    request: Request,
    state: Literal["pending", "met", "missed", "open"] | None = None,
    incident: Annotated[str | None, Query(pattern=r"^[0-9a-f]{26}$")] = None,
    since: TimeParam = None,
    until: TimeParam = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 200,
) -> CommitmentList:
    """Commitments (`open`: not yet fulfilled, due or overdue), and met/missed counts by kind
    for those due within since/until."""
    async with runtime_of(request).db.connect() as conn:
        found = await commitment_store.load_commitments(
            conn,
            incident=incident,
            unfulfilled=state == "open",
            state=state if state in ("pending", "met", "missed") else None,
            limit=limit,
        )
        counts = await commitment_store.commitment_counts(
            conn, millis(since, "since"), millis(until, "until")
        )
    summary: dict[str, dict[str, int]] = {}
    for (kind, kept), count in counts.items():
        summary.setdefault(kind, {"met": 0, "missed": 0, "pending": 0})[kept] = count
    return CommitmentList(commitments=[commitment_out(c) for c in found], summary=summary)
