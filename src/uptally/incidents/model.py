"""Incident values: statuses, impact, the incident, its updates, postmortem and runbook steps."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from uptally.clock import Millis
from uptally.status import SEVERITY, ComponentStatus


class Status(StrEnum):
    INVESTIGATING = "investigating"
    IDENTIFIED = "identified"
    MONITORING = "monitoring"
    RESOLVED = "resolved"
    POSTMORTEM = "postmortem"  # resolved, with its postmortem published

    @property
    def open(self) -> bool:
        return self not in (Status.RESOLVED, Status.POSTMORTEM)


# What an update may set; `postmortem` comes only from publishing one.
UPDATE_STATUSES = (Status.INVESTIGATING, Status.IDENTIFIED, Status.MONITORING, Status.RESOLVED)


class Impact(StrEnum):
    NONE = "none"
    MINOR = "minor"
    MAJOR = "major"
    CRITICAL = "critical"


# A component named without a status is shown as the impact suggests.
IMPACT_STATUS = {
    Impact.NONE: ComponentStatus.DEGRADED_PERFORMANCE,
    Impact.MINOR: ComponentStatus.DEGRADED_PERFORMANCE,
    Impact.MAJOR: ComponentStatus.PARTIAL_OUTAGE,
    Impact.CRITICAL: ComponentStatus.MAJOR_OUTAGE,
}
DOWN_STATUSES = frozenset({ComponentStatus.PARTIAL_OUTAGE, ComponentStatus.MAJOR_OUTAGE})


def worse(a: ComponentStatus, b: ComponentStatus) -> ComponentStatus:
    return a if SEVERITY[a] >= SEVERITY[b] else b


@dataclass(frozen=True, slots=True)
class Affected:
    """A component in an incident: its status now and the worst it had during the incident."""

    status: ComponentStatus
    worst: ComponentStatus


@dataclass(frozen=True, slots=True)
class Incident:
    id: str
    title: str
    status: Status
    impact: Impact
    components: Mapping[str, Affected]
    created_at: Millis
    updated_at: Millis
    started_at: Millis
    created_by: str
    identified_at: Millis | None = None
    monitoring_at: Millis | None = None
    resolved_at: Millis | None = None
    last_post_at: Millis | None = None  # the newest public update
    automatic: bool = False  # opened by a verified outage
    automated: bool = False  # automation still posts updates (until a person does)
    outages: Mapping[str, str] = field(default_factory=dict)  # open ones followed: monitor → id
    runbook: str | None = None


@dataclass(frozen=True, slots=True)
class Update:
    id: str
    incident: str
    status: Status
    body: str  # Markdown
    body_html: str  # sanitised
    components: Mapping[str, ComponentStatus]  # as they were at this update
    created_at: Millis
    author: str
    automatic: bool = False


@dataclass(frozen=True, slots=True)
class Postmortem:
    incident: str
    body: str
    body_html: str
    created_at: Millis
    updated_at: Millis
    author: str
    published_at: Millis | None = None  # None: a draft


@dataclass(frozen=True, slots=True)
class RunbookStep:
    incident: str
    position: int
    phase: str
    title: str
    done_at: Millis | None = None
    done_by: str | None = None
