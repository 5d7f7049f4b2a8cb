"""JSON shapes of the admin API (also the OpenAPI document)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorDetail(Model):
    path: str  # a JSON pointer into the request body, e.g. /results/3/at
    message: str


class ErrorBody(Model):
    code: str
    message: str
    details: list[ErrorDetail] | None = None  # with 422: which fields, and what is wrong


class ErrorOut(Model):
    error: ErrorBody


class ResultOut(Model):
    id: str
    monitor: str
    location: str
    at: str
    ok: bool
    latency_ms: float | None
    error: str | None
    message: str


class LocationOut(Model):
    # offline: silent too long to count; degraded: its probe cannot reach its canaries
    state: Literal["up", "down", "unknown", "offline", "degraded"]
    since: str | None
    consecutive_failures: int
    last_result: ResultOut | None


class MonitorOut(Model):
    id: str
    name: str
    kind: str
    description: str | None
    enabled: bool
    state: Literal["up", "down", "degraded", "unknown", "maintenance", "paused"]
    since: str | None
    target: str | None
    interval_s: float | None
    timeout_s: float | None
    locations: dict[str, LocationOut]
    components: list[str]
    tags: list[str]
    ping_url: str | None = None
    next_deadline: str | None = None
    source: Literal["config", "api"] = "config"  # config: provisioned by the file, read-only
    provisioned_by: str | None = None  # FILE:LINE
    version: int | None = None  # of an object made through the API (its ETag)
    config: dict[str, Any] | None = None  # the monitor in the config schema (write scope)


class MonitorList(Model):
    monitors: list[MonitorOut]


class MonitorPage(MonitorList):
    """A page of the monitor list; `next_cursor` fetches the next one (null: the last page)."""

    next_cursor: str | None = None


class ResultList(Model):
    results: list[ResultOut]


class PingOut(Model):
    id: str
    monitor: str
    at: str
    kind: str  # success | start | fail | log (an exit status: 0 success, else fail)
    exit_status: int | None
    method: str
    remote: str | None
    user_agent: str | None
    rid: str | None  # the run id (?rid=)
    duration_s: float | None  # an end ping's run time since its start (same rid)
    body: str | None  # the first `heartbeats.max_body` bytes


class PingList(Model):
    pings: list[PingOut]


class SpanOut(Model):
    start: str
    end: str | None


class OutageOut(Model):
    id: str
    monitor: str | None
    component: str | None
    start: str
    end: str | None
    verified: bool
    locations: dict[str, SpanOut]
    reason: str
    source: Literal["detected", "manual"]
    duration_s: float | None
    monitor_deleted: bool = False  # its monitor is configured no more (history is kept)


class OutageList(Model):
    outages: list[OutageOut]


class OutageIn(Model):
    monitor: str | None = Field(default=None, max_length=64)
    component: str | None = Field(default=None, max_length=64)
    start: datetime
    end: datetime
    reason: str = Field(default="", max_length=2000)
