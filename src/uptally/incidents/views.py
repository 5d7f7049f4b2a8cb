"""The read model of incidents for the status page, Statuspage v2 JSON, feeds and history.

Stable contract (docs/incidents.md): built by `uptally.store.incidents.list_incidents` and
`get_incident`. Times are integer milliseconds (UTC); statuses are Statuspage v2 values.
Operator-only data (runbooks, commitments, authors, drafts) never appears here.
"""

from __future__ import annotations

from dataclasses import dataclass

from uptally.clock import Millis


@dataclass(frozen=True, slots=True)
class ComponentImpact:
    component_id: str
    status: str  # the worst Statuspage component status it had during the incident
    current: str = "operational"  # its status as of the newest update (operational once resolved)


@dataclass(frozen=True, slots=True)
class UpdateView:
    id: str
    status: str  # investigating | identified | monitoring | resolved | postmortem (a later note)
    body_markdown: str
    body_html: str  # sanitised (uptally.markdown.render)
    created_at: Millis
    affected_components: list[ComponentImpact]  # as they were at this update


@dataclass(frozen=True, slots=True)
class PostmortemView:
    body_markdown: str
    body_html: str
    published_at: Millis | None  # None only for a draft (never in public views)
    updated_at: Millis | None = None


@dataclass(frozen=True, slots=True)
class IncidentView:
    id: str
    title: str
    status: str  # investigating | identified | monitoring | resolved | postmortem
    impact: str  # none | minor | major | critical
    created_at: Millis
    updated_at: Millis
    started_at: Millis
    monitoring_at: Millis | None
    resolved_at: Millis | None
    components: list[ComponentImpact]
    updates: list[UpdateView]  # newest first
    postmortem: PostmortemView | None
    shortlink: str | None = None
    identified_at: Millis | None = None
