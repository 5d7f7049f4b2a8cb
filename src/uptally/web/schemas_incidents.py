"""JSON shapes of the incidents admin API (also the OpenAPI document).

Statuses and impacts are the model's own enums, so every value the store can hold is a valid
answer; only what an update may set is narrower (tests/test_incidents_api.py pins it to
`UPDATE_STATUSES`).
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from uptally.config.schema import ID_PATTERN
from uptally.incidents.commitments import Kind, State
from uptally.incidents.model import Impact, Status
from uptally.status import ComponentStatus
from uptally.web.schemas import Model

ComponentId = Annotated[str, Field(pattern=ID_PATTERN)]
ComponentsIn = Annotated[
    list[ComponentId] | dict[ComponentId, ComponentStatus],
    Field(description="ids (status from the impact) or {id: status}"),
]
# What a request may set: `postmortem` is reached by publishing one, never set by hand.
UpdateStatus = Literal["investigating", "identified", "monitoring", "resolved"]
Message = Annotated[str, Field(min_length=1, max_length=50_000)]
# A string read by `uptally.web.deps.millis`: ISO 8601 only, with a clear error for anything else.
Time = Annotated[
    str,
    Field(
        max_length=40,
        json_schema_extra={"format": "date-time"},
        description="ISO 8601, e.g. 2026-10-01T09:30:00Z (without an offset: UTC)",
    ),
]


class IncidentIn(Model):
    title: str = Field(min_length=1, max_length=256)
    status: UpdateStatus = "investigating"
    impact: Impact = Impact.MINOR
    components: ComponentsIn = Field(default_factory=list)
    message: str | None = Field(default=None, max_length=50_000)
    started_at: Time | None = None
    runbook: str | None = Field(default=None, pattern=ID_PATTERN)


class UpdateIn(Model):
    status: UpdateStatus | None = None
    message: Message
    components: ComponentsIn | None = None


class IncidentPatch(Model):
    title: str | None = Field(default=None, min_length=1, max_length=256)
    impact: Impact | None = None
    components: ComponentsIn | None = None
    started_at: Time | None = None


class PostmortemIn(Model):
    body: Message


class RunbookIn(Model):
    template: str = Field(pattern=ID_PATTERN)


class StepIn(Model):
    done: bool


class ComponentOut(Model):
    id: str
    status: ComponentStatus
    worst: ComponentStatus


class UpdateOut(Model):
    id: str
    status: Status  # also `postmortem`: a note posted after the postmortem was published
    body: str
    body_html: str
    components: dict[str, ComponentStatus]
    created_at: str
    author: str
    automatic: bool


class PostmortemOut(Model):
    state: Literal["draft", "published"]
    body: str
    body_html: str
    created_at: str
    updated_at: str
    published_at: str | None
    author: str


class StepOut(Model):
    position: int
    phase: str
    title: str
    done: bool
    done_at: str | None
    done_by: str | None


class RunbookOut(Model):
    template: str | None
    steps: list[StepOut]


class CommitmentOut(Model):
    id: str
    incident: str
    kind: Kind
    state: State
    opened_at: str
    due_at: str
    met_at: str | None
    reminded_at: str | None
    overdue_at: str | None


class IncidentOut(Model):
    id: str
    title: str
    status: Status
    impact: Impact
    components: list[ComponentOut]
    created_at: str
    updated_at: str
    started_at: str
    identified_at: str | None
    monitoring_at: str | None
    resolved_at: str | None
    created_by: str
    automatic: bool
    automated: bool
    url: str | None
    updates: list[UpdateOut]
    postmortem: PostmortemOut | None = None
    runbook: RunbookOut | None = None
    commitments: list[CommitmentOut] | None = None


class IncidentList(Model):
    incidents: list[IncidentOut]


class CommitmentList(Model):
    commitments: list[CommitmentOut]
    summary: dict[str, dict[str, int]]  # kind → {met, missed, pending}
