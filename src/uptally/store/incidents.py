"""Incidents, their updates, components, postmortems and runbook steps (repository).

`list_incidents` and `get_incident` are the read model of the status page (see
uptally.incidents.views); the rest serves the incident desk. Callers own the transaction.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from sqlalchemy import and_, delete, insert, or_, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from uptally.clock import Millis
from uptally.incidents.model import (
    Affected,
    Impact,
    Incident,
    Postmortem,
    RunbookStep,
    Status,
    Update,
)
from uptally.incidents.views import ComponentImpact, IncidentView, PostmortemView, UpdateView
from uptally.status import ComponentStatus
from uptally.store.tables_incidents import (
    incident_components,
    incident_updates,
    incidents,
    postmortems,
    runbook_steps,
)

_CLOSED = (Status.RESOLVED.value, Status.POSTMORTEM.value)


# -- the incident desk ---------------------------------------------------------------------


async def lock(conn: AsyncConnection, incident_id: str) -> bool:
    """Take the incident for this transaction (write lock first); False if it does not exist."""
    result = await conn.execute(
        update(incidents)
        .where(incidents.c.id == incident_id)
        .values(version=incidents.c.version + 1)
    )
    return bool(result.rowcount)


async def insert_incident(conn: AsyncConnection, incident: Incident) -> None:
    await conn.execute(insert(incidents), [{**_row(incident), "version": 0}])
    await _save_components(conn, incident, replace_all=False)


async def save_incident(conn: AsyncConnection, incident: Incident) -> None:
    await conn.execute(
        update(incidents).where(incidents.c.id == incident.id).values(**_row(incident))
    )
    await _save_components(conn, incident, replace_all=True)


async def load_incident(conn: AsyncConnection, incident_id: str) -> Incident | None:
    found = await _load(conn, incidents.c.id == incident_id)
    return found[0] if found else None


async def open_incidents(conn: AsyncConnection) -> list[Incident]:
    return await _load(conn, incidents.c.status.not_in(_CLOSED))


async def find_incidents(
    conn: AsyncConnection,
    *,
    since: Millis | None = None,
    until: Millis | None = None,
    unresolved_only: bool = False,
    component: str | None = None,
    limit: int = 50,
    resolved_only: bool = False,
) -> list[Incident]:
    where = _filters(since, until, unresolved_only, component, resolved_only)
    return await _load(conn, where, limit=limit)


async def insert_update(conn: AsyncConnection, item: Update) -> None:
    await conn.execute(
        insert(incident_updates),
        [
            {
                "id": item.id,
                "incident": item.incident,
                "status": item.status.value,
                "body": item.body,
                "body_html": item.body_html,
                "components": _json({k: v.value for k, v in item.components.items()}),
                "created_at": item.created_at,
                "author": item.author,
                "automatic": item.automatic,
            }
        ],
    )


async def load_updates(conn: AsyncConnection, incident_ids: Sequence[str]) -> list[Update]:
    """Updates of these incidents, newest first."""
    if not incident_ids:
        return []
    rows = await conn.execute(
        select(incident_updates)
        .where(incident_updates.c.incident.in_(list(incident_ids)))
        .order_by(incident_updates.c.created_at.desc(), incident_updates.c.id.desc())
    )
    return [
        Update(
            r.id,
            r.incident,
            Status(r.status),
            r.body,
            r.body_html,
            {k: ComponentStatus(v) for k, v in json.loads(r.components).items()},
            r.created_at,
            r.author,
            bool(r.automatic),
        )
        for r in rows
    ]


async def save_postmortem(conn: AsyncConnection, postmortem: Postmortem) -> None:
    values = {
        "body": postmortem.body,
        "body_html": postmortem.body_html,
        "updated_at": postmortem.updated_at,
        "published_at": postmortem.published_at,
        "author": postmortem.author,
    }
    changed = await conn.execute(
        update(postmortems).where(postmortems.c.incident == postmortem.incident).values(**values)
    )
    if not changed.rowcount:
        await conn.execute(
            insert(postmortems),
            [{**values, "incident": postmortem.incident, "created_at": postmortem.created_at}],
        )


async def load_postmortems(
    conn: AsyncConnection, incident_ids: Sequence[str]
) -> dict[str, Postmortem]:
    if not incident_ids:
        return {}
    rows = await conn.execute(
        select(postmortems).where(postmortems.c.incident.in_(list(incident_ids)))
    )
    return {
        r.incident: Postmortem(
            r.incident, r.body, r.body_html, r.created_at, r.updated_at, r.author, r.published_at
        )
        for r in rows
    }


async def insert_steps(conn: AsyncConnection, steps: Sequence[RunbookStep]) -> None:
    if steps:
        await conn.execute(
            insert(runbook_steps),
            [
                {
                    "incident": s.incident,
                    "position": s.position,
                    "phase": s.phase,
                    "title": s.title,
                    "done_at": s.done_at,
                    "done_by": s.done_by,
                }
                for s in steps
            ],
        )


async def delete_steps(conn: AsyncConnection, incident_id: str) -> None:
    await conn.execute(delete(runbook_steps).where(runbook_steps.c.incident == incident_id))


async def load_steps(conn: AsyncConnection, incident_id: str) -> list[RunbookStep]:
    rows = await conn.execute(
        select(runbook_steps)
        .where(runbook_steps.c.incident == incident_id)
        .order_by(runbook_steps.c.position)
    )
    return [
        RunbookStep(r.incident, r.position, r.phase, r.title, r.done_at, r.done_by) for r in rows
    ]


async def mark_step(
    conn: AsyncConnection, incident_id: str, position: int, done_at: Millis | None, by: str | None
) -> bool:
    result = await conn.execute(
        update(runbook_steps)
        .where(runbook_steps.c.incident == incident_id, runbook_steps.c.position == position)
        .values(done_at=done_at, done_by=by)
    )
    return bool(result.rowcount)


# -- the read model of the status page -----------------------------------------------------


async def list_incidents(
    conn: AsyncConnection,
    *,
    since: Millis | None = None,
    until: Millis | None = None,
    unresolved_only: bool = False,
    component: str | None = None,
    limit: int = 50,
    public: bool = True,
) -> list[IncidentView]:
    """Incidents newest first (by start) that overlap [since, until).

    `since`/`until` select incidents active at some time in between (an open one is active
    until now); `public` (the default) leaves out postmortems that are not published yet.
    """
    found = await find_incidents(
        conn,
        since=since,
        until=until,
        unresolved_only=unresolved_only,
        component=component,
        limit=limit,
    )
    return await views_of(conn, found, public=public)


async def get_incident(
    conn: AsyncConnection, incident_id: str, *, public: bool = True
) -> IncidentView | None:
    found = await load_incident(conn, incident_id)
    if found is None:
        return None
    return (await views_of(conn, [found], public=public))[0]


async def views_of(
    conn: AsyncConnection, found: Sequence[Incident], *, public: bool = True
) -> list[IncidentView]:
    ids = [i.id for i in found]
    updates: dict[str, list[Update]] = {}
    for item in await load_updates(conn, ids):
        updates.setdefault(item.incident, []).append(item)
    written = await load_postmortems(conn, ids)
    return [view_of(i, updates.get(i.id, []), written.get(i.id), public=public) for i in found]


def view_of(
    incident: Incident, updates: Sequence[Update], postmortem: Postmortem | None, *, public: bool
) -> IncidentView:
    shown = postmortem
    if shown is not None and public and shown.published_at is None:
        shown = None
    return IncidentView(
        id=incident.id,
        title=incident.title,
        status=incident.status.value,
        impact=incident.impact.value,
        created_at=incident.created_at,
        updated_at=incident.updated_at,
        started_at=incident.started_at,
        monitoring_at=incident.monitoring_at,
        resolved_at=incident.resolved_at,
        components=[
            ComponentImpact(name, a.worst.value, a.status.value)
            for name, a in sorted(incident.components.items())
        ],
        updates=[
            UpdateView(
                u.id,
                u.status.value,
                u.body,
                u.body_html,
                u.created_at,
                [ComponentImpact(k, v.value, v.value) for k, v in sorted(u.components.items())],
            )
            for u in updates
        ],
        postmortem=(
            PostmortemView(shown.body, shown.body_html, shown.published_at, shown.updated_at)
            if shown is not None
            else None
        ),
        shortlink=None,
        identified_at=incident.identified_at,
    )


# -- rows ----------------------------------------------------------------------------------


def _filters(
    since: Millis | None,
    until: Millis | None,
    unresolved_only: bool,
    component: str | None,
    resolved_only: bool = False,
) -> Any:
    conditions: list[Any] = []
    if resolved_only:
        conditions.append(incidents.c.status.in_(_CLOSED))
    if since is not None:
        conditions.append(or_(incidents.c.resolved_at.is_(None), incidents.c.resolved_at >= since))
    if until is not None:
        conditions.append(incidents.c.started_at < until)
    if unresolved_only:
        conditions.append(incidents.c.status.not_in(_CLOSED))
    if component is not None:
        conditions.append(
            incidents.c.id.in_(
                select(incident_components.c.incident).where(
                    incident_components.c.component == component
                )
            )
        )
    return and_(*conditions) if conditions else None


async def _load(conn: AsyncConnection, where: Any, *, limit: int | None = None) -> list[Incident]:
    query = select(incidents)
    if where is not None:
        query = query.where(where)
    query = query.order_by(incidents.c.started_at.desc(), incidents.c.id.desc())
    if limit is not None:
        query = query.limit(limit)
    rows = (await conn.execute(query)).all()
    if not rows:
        return []
    affected: dict[str, dict[str, Affected]] = {}
    parts = await conn.execute(
        select(incident_components).where(incident_components.c.incident.in_([r.id for r in rows]))
    )
    for part in parts:
        affected.setdefault(part.incident, {})[part.component] = Affected(
            ComponentStatus(part.status), ComponentStatus(part.worst)
        )
    return [_incident(r, affected.get(r.id, {})) for r in rows]


def _incident(r: Row[Any], affected: dict[str, Affected]) -> Incident:
    return Incident(
        id=r.id,
        title=r.title,
        status=Status(r.status),
        impact=Impact(r.impact),
        components=affected,
        created_at=r.created_at,
        updated_at=r.updated_at,
        started_at=r.started_at,
        created_by=r.created_by,
        identified_at=r.identified_at,
        monitoring_at=r.monitoring_at,
        resolved_at=r.resolved_at,
        last_post_at=r.last_post_at,
        automatic=bool(r.automatic),
        automated=bool(r.automated),
        outages=json.loads(r.outages),
        runbook=r.runbook,
    )


def _row(incident: Incident) -> dict[str, Any]:
    return {
        "id": incident.id,
        "title": incident.title,
        "status": incident.status.value,
        "impact": incident.impact.value,
        "created_at": incident.created_at,
        "updated_at": incident.updated_at,
        "started_at": incident.started_at,
        "identified_at": incident.identified_at,
        "monitoring_at": incident.monitoring_at,
        "resolved_at": incident.resolved_at,
        "last_post_at": incident.last_post_at,
        "created_by": incident.created_by,
        "automatic": incident.automatic,
        "automated": incident.automated,
        "outages": _json(dict(incident.outages)),
        "runbook": incident.runbook,
    }


async def _save_components(conn: AsyncConnection, incident: Incident, *, replace_all: bool) -> None:
    if replace_all:
        await conn.execute(
            delete(incident_components).where(incident_components.c.incident == incident.id)
        )
    if incident.components:
        await conn.execute(
            insert(incident_components),
            [
                {
                    "incident": incident.id,
                    "component": name,
                    "status": a.status.value,
                    "worst": a.worst.value,
                }
                for name, a in incident.components.items()
            ],
        )


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)
