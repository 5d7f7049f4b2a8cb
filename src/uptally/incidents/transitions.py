"""Incident changes (pure): declare, update, edit, postmortem; each says what to announce."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from uptally import markdown
from uptally.clock import Millis
from uptally.events import Event, EventKind
from uptally.incidents.model import (
    IMPACT_STATUS,
    Affected,
    Impact,
    Incident,
    Postmortem,
    Status,
    Update,
    worse,
)
from uptally.status import ComponentStatus

MAX_TITLE = 256
MAX_BODY = 50_000
CLOCK_SKEW: Millis = 60_000  # a start this far ahead of our clock is the caller's clock: now
# Control characters (NUL above all, which PostgreSQL text cannot hold) are never meant.
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


class IncidentError(ValueError):
    """A change that is not allowed (the incident stays as it was)."""


@dataclass(frozen=True, slots=True)
class Change:
    incident: Incident
    update: Update | None = None
    events: list[Event] = field(default_factory=list)


Components = Mapping[str, ComponentStatus | None]  # None: as the impact suggests


def declare(
    incident_id: str,
    *,
    title: str,
    status: Status,
    impact: Impact,
    components: Components,
    message: str | None,
    actor: str,
    now: Millis,
    update_id: str,
    started_at: Millis | None = None,
    automatic: bool = False,
    outages: Mapping[str, str] | None = None,
    runbook: str | None = None,
) -> Change:
    """A new incident; with a message, its first public update."""
    title = _title(title)
    if status is Status.POSTMORTEM:
        raise IncidentError("an incident starts investigating, identified, monitoring or resolved")
    affected = _merge({}, components, impact)
    incident = Incident(
        id=incident_id,
        title=title,
        status=Status.INVESTIGATING,
        impact=impact,
        components=affected,
        created_at=now,
        updated_at=now,
        started_at=_start(started_at, None, now) if started_at is not None else now,
        created_by=actor,
        automatic=automatic,
        automated=automatic,
        outages=dict(outages or {}),
        runbook=runbook,
    )
    incident = _enter(incident, status, now)
    if status is Status.RESOLVED:
        incident = _settle(incident)
    update = None
    if message is not None and message.strip():
        update = _update(update_id, incident, message, actor, now, automatic)
        incident = replace(incident, last_post_at=now)
    event = incident_event(EventKind.INCIDENT_CREATED, incident, update, now)
    return Change(incident, update, [event])


def post_update(
    incident: Incident,
    *,
    status: Status | None,
    message: str,
    components: Components | None,
    actor: str,
    now: Millis,
    update_id: str,
    automatic: bool = False,
) -> Change:
    """A public update: the timeline grows, the status may move (or reopen a resolved one)."""
    if not message.strip():
        raise IncidentError("an update needs a message")
    target = status or (incident.status if incident.status.open else Status.RESOLVED)
    if target is Status.POSTMORTEM:
        raise IncidentError("publish a postmortem to reach status postmortem")
    was_open = incident.status.open
    changed = incident
    if components:
        changed = replace(changed, components=_merge(changed.components, components, None))
    if target is not incident.status and not (target is Status.RESOLVED and not was_open):
        changed = _enter(changed, target, now)
        if target.open and not was_open:  # reopened
            changed = replace(changed, resolved_at=None)
    if target is Status.RESOLVED and was_open:
        changed = _settle(changed)
    changed = replace(
        changed,
        updated_at=now,
        last_post_at=now,
        automated=changed.automated and automatic,  # a person took over: automation stops
    )
    update = _update(update_id, changed, message, actor, now, automatic)
    kind = EventKind.INCIDENT_UPDATED
    if target is Status.RESOLVED and was_open:
        kind = EventKind.INCIDENT_RESOLVED
    return Change(changed, update, [incident_event(kind, changed, update, now)])


def edit(
    incident: Incident,
    *,
    now: Millis,
    title: str | None = None,
    impact: Impact | None = None,
    components: Components | None = None,
    started_at: Millis | None = None,
) -> Change:
    """Correct title, impact, components or start (no announcement: it is not news)."""
    changed = incident
    if title is not None:
        changed = replace(changed, title=_title(title))
    if impact is not None:
        changed = replace(changed, impact=impact)
    if components is not None:
        kept = {name: a for name, a in changed.components.items() if name in components}
        changed = replace(changed, components=_merge(kept, components, changed.impact))
    if started_at is not None:
        changed = replace(changed, started_at=_start(started_at, changed.resolved_at, now))
    return Change(replace(changed, updated_at=now))


def write_postmortem(
    incident: Incident, existing: Postmortem | None, body: str, actor: str, now: Millis
) -> Postmortem:
    """Save the postmortem's text (a draft until published; a published one stays published)."""
    body = _body(body)
    if existing is None:
        return Postmortem(incident.id, body, markdown.render(body), now, now, actor)
    return replace(
        existing, body=body, body_html=markdown.render(body), updated_at=now, author=actor
    )


def publish_postmortem(
    incident: Incident, postmortem: Postmortem | None, now: Millis
) -> tuple[Change, Postmortem]:
    if postmortem is None:
        raise IncidentError("write the postmortem first (PUT …/postmortem)")
    if incident.status.open:
        raise IncidentError("resolve the incident before publishing its postmortem")
    published = replace(postmortem, published_at=postmortem.published_at or now, updated_at=now)
    changed = replace(incident, status=Status.POSTMORTEM, updated_at=now)
    event = incident_event(EventKind.INCIDENT_UPDATED, changed, None, now, postmortem=True)
    return Change(changed, None, [event]), published


def incident_event(
    kind: EventKind, incident: Incident, update: Update | None, now: Millis, **extra: Any
) -> Event:
    data: dict[str, Any] = {
        "incident": incident.id,
        "title": incident.title,
        "status": incident.status.value,
        "impact": incident.impact.value,
        "components": {name: a.status.value for name, a in sorted(incident.components.items())},
        "started_at": incident.started_at,
        "resolved_at": incident.resolved_at,
        "update": update.id if update else None,
        "message": update.body if update else None,
        "automatic": bool(update and update.automatic),
    }
    data.update(extra)
    return Event(kind, now, incident.id, data)


def _enter(incident: Incident, status: Status, now: Millis) -> Incident:
    entered = replace(incident, status=status)
    if status is Status.IDENTIFIED and incident.identified_at is None:
        entered = replace(entered, identified_at=now)
    if status is Status.MONITORING and incident.monitoring_at is None:
        entered = replace(entered, monitoring_at=now)
    if status is Status.RESOLVED:
        entered = replace(entered, resolved_at=now)
    return entered


def _settle(incident: Incident) -> Incident:
    """Resolved: every component is operational again (the worst it was stays recorded)."""
    settled = {
        name: Affected(ComponentStatus.OPERATIONAL, a.worst)
        for name, a in incident.components.items()
    }
    return replace(incident, components=settled, outages={})


def _merge(
    current: Mapping[str, Affected], given: Components, impact: Impact | None
) -> dict[str, Affected]:
    merged = dict(current)
    for name, given_status in given.items():
        previous = merged.get(name)
        if given_status is None and previous is not None:
            continue
        status = ComponentStatus(given_status or IMPACT_STATUS[impact or Impact.MAJOR])
        worst = worse(previous.worst, status) if previous else status
        merged[name] = Affected(status, worst)
    return merged


def _update(
    update_id: str, incident: Incident, message: str, actor: str, now: Millis, automatic: bool
) -> Update:
    body = _body(message)
    return Update(
        update_id,
        incident.id,
        incident.status,
        body,
        markdown.render(body),
        {name: a.status for name, a in incident.components.items()},
        now,
        actor,
        automatic,
    )


def _start(started_at: Millis, resolved_at: Millis | None, now: Millis) -> Millis:
    """When an incident started, as given (backdated), or now for a moment of clock skew."""
    if resolved_at is not None and started_at > resolved_at:
        raise IncidentError("started_at must lie before the incident's resolution")
    if started_at > now + CLOCK_SKEW:
        raise IncidentError(
            f"started_at lies in the future (more than {CLOCK_SKEW // 1000} s ahead of now)"
        )
    return min(started_at, now)


def _title(title: str) -> str:
    if _CONTROL.search(title):
        raise IncidentError("a title must not contain control characters")
    title = " ".join(title.split())
    if not title or len(title) > MAX_TITLE:
        raise IncidentError(f"a title is 1 to {MAX_TITLE} characters")
    return title


def _body(body: str) -> str:
    if _CONTROL.search(body):
        raise IncidentError("a message must not contain control characters")
    body = body.strip()
    if len(body) > MAX_BODY:
        raise IncidentError(f"a message is at most {MAX_BODY} characters")
    return body
