"""The incident desk: each incident change in one transaction with everything it implies.

The change itself, its update, its events, its commitments and its audit entry commit together,
for people (through the API) and for the automation alike.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from sqlalchemy.ext.asyncio import AsyncConnection

from uptally import audit
from uptally.clock import Clock, Millis, iso
from uptally.config.schema import Config
from uptally.ids import new_id
from uptally.incidents import commitments as rules_of
from uptally.incidents.calendar import BusinessCalendar
from uptally.incidents.commitments import Commitment, Rules
from uptally.incidents.model import Impact, Incident, Postmortem, RunbookStep, Status, Update
from uptally.incidents.runbooks import steps_from
from uptally.incidents.transitions import (
    Change,
    Components,
    IncidentError,
    declare,
    edit,
    post_update,
    publish_postmortem,
    write_postmortem,
)
from uptally.store import commitments as commitment_store
from uptally.store import incidents as store
from uptally.store import outages as outage_store
from uptally.store import outbox as outbox_store
from uptally.store.database import Database

__all__ = ["Desk", "Detail", "IncidentError", "NotFound"]


class NotFound(LookupError):
    pass


@dataclass(frozen=True, slots=True)
class Detail:
    """Everything operators see about an incident (the public view is a subset)."""

    incident: Incident
    updates: list[Update]  # newest first
    postmortem: Postmortem | None
    steps: list[RunbookStep]
    commitments: list[Commitment]
    extra: dict[str, Any] = field(default_factory=dict)


def rules_for(config: Config) -> Rules:
    site = config.site
    calendar = BusinessCalendar(site.timezone, site.country, site.subdivision)
    return Rules.from_settings(config.incidents.commitments, calendar)


class Desk:
    def __init__(
        self,
        db: Database,
        clock: Clock,
        config: Callable[[], Config],
        on_events: Callable[[], None] = lambda: None,
    ) -> None:
        self.db = db
        self.clock = clock
        self.config = config
        self.on_events = on_events  # new outbox events committed: wake the dispatcher

    # -- commands ----------------------------------------------------------------------------

    async def declare(
        self,
        *,
        title: str,
        status: Status,
        impact: Impact,
        components: Components,
        message: str | None,
        actor: str,
        started_at: Millis | None = None,
        runbook: str | None = None,
        outages: Mapping[str, str] | None = None,
    ) -> Incident:
        """`outages` (monitor → open outage) are followed: their recovery is noted."""
        config = self.config()
        self._known(components, config)
        if runbook is not None and runbook not in config.incidents.runbooks:
            raise IncidentError(f"no runbook template {runbook!r}")
        now = self.clock.now_ms()
        change = declare(
            new_id(now),
            title=title,
            status=status,
            impact=impact,
            components=components,
            message=message,
            actor=actor,
            now=now,
            update_id=new_id(now),
            started_at=started_at,
            runbook=runbook,
            outages=outages,
        )
        async with self.db.begin() as conn:
            await self.record(conn, change, actor, now, new=True)
        self.on_events()
        return change.incident

    async def post_update(
        self,
        incident_id: str,
        *,
        status: Status | None,
        message: str,
        components: Components | None,
        actor: str,
    ) -> Incident:
        if components:
            self._known(components, self.config())
        now = self.clock.now_ms()
        async with self.db.begin() as conn:
            incident = await self._take(conn, incident_id)
            change = post_update(
                incident,
                status=status,
                message=message,
                components=components,
                actor=actor,
                now=now,
                update_id=new_id(now),
            )
            await self.record(conn, change, actor, now)
        self.on_events()
        return change.incident

    async def edit(
        self,
        incident_id: str,
        *,
        actor: str,
        title: str | None = None,
        impact: Impact | None = None,
        components: Components | None = None,
        started_at: Millis | None = None,
    ) -> Incident:
        if components is not None:
            self._known(components, self.config())
        now = self.clock.now_ms()
        async with self.db.begin() as conn:
            incident = await self._take(conn, incident_id)
            change = edit(
                incident,
                now=now,
                title=title,
                impact=impact,
                components=components,
                started_at=started_at,
            )
            await self.record(conn, change, actor, now, action="incident.edited")
        return change.incident

    async def write_postmortem(self, incident_id: str, body: str, actor: str) -> Postmortem:
        now = self.clock.now_ms()
        async with self.db.begin() as conn:
            incident = await self._take(conn, incident_id)
            existing = (await store.load_postmortems(conn, [incident_id])).get(incident_id)
            written = write_postmortem(incident, existing, body, actor, now)
            await store.save_postmortem(conn, written)
            await audit.append(
                conn,
                actor,
                "postmortem.saved",
                f"incident:{incident_id}",
                {"published": written.published_at is not None},
                at=now,
            )
        return written

    async def publish_postmortem(self, incident_id: str, actor: str) -> Postmortem:
        now = self.clock.now_ms()
        async with self.db.begin() as conn:
            incident = await self._take(conn, incident_id)
            existing = (await store.load_postmortems(conn, [incident_id])).get(incident_id)
            change, published = publish_postmortem(incident, existing, now)
            await store.save_postmortem(conn, published)
            await self.record(conn, change, actor, now, action="postmortem.published")
            pending = await commitment_store.load_commitments(
                conn, incident=incident_id, unfulfilled=True
            )
            await commitment_store.save_commitments(
                conn, rules_of.postmortem_published(pending, now)
            )
        self.on_events()
        return published

    async def attach_runbook(
        self, incident_id: str, template: str, actor: str
    ) -> list[RunbookStep]:
        phases = self.config().incidents.runbooks.get(template)
        if phases is None:
            raise IncidentError(f"no runbook template {template!r}")
        now = self.clock.now_ms()
        async with self.db.begin() as conn:
            incident = await self._take(conn, incident_id)
            steps = steps_from(incident_id, phases)
            await store.delete_steps(conn, incident_id)
            await store.insert_steps(conn, steps)
            await store.save_incident(conn, _with_runbook(incident, template, now))
            await audit.append(
                conn,
                actor,
                "runbook.attached",
                f"incident:{incident_id}",
                {"template": template, "steps": len(steps)},
                at=now,
            )
        return steps

    async def check_step(
        self, incident_id: str, position: int, done: bool, actor: str
    ) -> list[RunbookStep]:
        now = self.clock.now_ms()
        async with self.db.begin() as conn:
            await self._take(conn, incident_id)
            marked = await store.mark_step(
                conn, incident_id, position, now if done else None, actor if done else None
            )
            if not marked:
                raise NotFound(f"incident {incident_id} has no runbook step {position}")
            await audit.append(
                conn,
                actor,
                "runbook.step",
                f"incident:{incident_id}",
                {"step": position, "done": done},
                at=now,
            )
            return await store.load_steps(conn, incident_id)

    # -- reading -----------------------------------------------------------------------------

    async def detail(self, incident_id: str) -> Detail:
        async with self.db.connect() as conn:
            incident = await store.load_incident(conn, incident_id)
            if incident is None:
                raise NotFound(f"no incident {incident_id!r}")
            return Detail(
                incident,
                await store.load_updates(conn, [incident_id]),
                (await store.load_postmortems(conn, [incident_id])).get(incident_id),
                await store.load_steps(conn, incident_id),
                await commitment_store.load_commitments(conn, incident=incident_id),
            )

    # -- one change, with everything that goes with it ---------------------------------------

    async def record(
        self,
        conn: AsyncConnection,
        change: Change,
        actor: str,
        now: Millis,
        *,
        new: bool = False,
        action: str | None = None,
    ) -> None:
        """Write a change in the caller's transaction: incident, update, events, commitments,
        audit entry (and, for a new incident with a runbook template, its checklist)."""
        incident = change.incident
        config = self.config()
        rules = rules_for(config)
        if new:
            await store.insert_incident(conn, incident)
            if incident.runbook and incident.runbook in config.incidents.runbooks:
                phases = config.incidents.runbooks[incident.runbook]
                await store.insert_steps(conn, steps_from(incident.id, phases))
        else:
            await store.save_incident(conn, incident)
        if change.update is not None:
            await store.insert_update(conn, change.update)
        await outbox_store.append_events(conn, change.events, now)
        if new:
            made = rules_of.declared(incident, now, rules, lambda: new_id(now))
            await commitment_store.save_commitments(conn, made)
        elif change.update is not None:
            pending = await commitment_store.load_commitments(
                conn, incident=incident.id, unfulfilled=True
            )
            owed = await commitment_store.load_commitments(conn, incident=incident.id)
            has_postmortem = any(c.kind is rules_of.Kind.POSTMORTEM for c in owed)
            downtime: dict[str, Millis] = {}
            if not incident.status.open and not has_postmortem:
                downtime = await self._downtime(conn, incident, config, now)
            made = rules_of.posted(
                pending, incident, now, rules, lambda: new_id(now), downtime, has_postmortem
            )
            await commitment_store.save_commitments(conn, made)
        if action is None:
            action = "incident.created" if new else "incident.updated"
        details: dict[str, Any] = {
            "title": incident.title,
            "status": incident.status.value,
            "impact": incident.impact.value,
            "components": {k: a.status.value for k, a in sorted(incident.components.items())},
            "started_at": iso(incident.started_at),
        }
        if change.update is not None:
            details["update"] = change.update.id
        await audit.append(conn, actor, action, f"incident:{incident.id}", details, at=now)

    async def _downtime(
        self, conn: AsyncConnection, incident: Incident, config: Config, now: Millis
    ) -> dict[str, Millis]:
        """How long each component was down during the incident: from its own timeline and
        from the verified outages of the component's monitors."""
        updates = await store.load_updates(conn, [incident.id])
        spans = rules_of.down_spans(incident, updates, now)
        end = incident.resolved_at or now
        for component in config.components:
            if component.id not in incident.components or not component.monitors:
                continue
            found = await outage_store.list_outages(
                conn,
                monitors=component.monitors,
                since=incident.started_at,
                until=end,
                verified_only=True,
            )
            for stored in found:
                outage = stored.outage
                start = max(outage.start, incident.started_at)
                stop = min(outage.end if outage.end is not None else end, end)
                if stop > start:
                    spans.setdefault(component.id, []).append((start, stop))
        return rules_of.downtime(spans)

    async def _take(self, conn: AsyncConnection, incident_id: str) -> Incident:
        if not await store.lock(conn, incident_id):
            raise NotFound(f"no incident {incident_id!r}")
        incident = await store.load_incident(conn, incident_id)
        assert incident is not None
        return incident

    @staticmethod
    def _known(components: Mapping[str, object], config: Config) -> None:
        known = {c.id for c in config.components}
        unknown = sorted(set(components) - known)
        if unknown:
            raise IncidentError(f"unknown component(s): {', '.join(unknown)}")


def _with_runbook(incident: Incident, template: str, now: Millis) -> Incident:
    return replace(incident, runbook=template, updated_at=now)
