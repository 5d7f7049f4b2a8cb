"""Healthchecks API v3 shapes: its check spec validated as it does, a heartbeat as its check."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from croniter import croniter
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from uptally.clock import Millis, iso
from uptally.config.schema import HeartbeatMonitor
from uptally.evaluator.states import MonitorState
from uptally.store.heartbeats import HeartbeatRow

# The messages of Healthchecks' `format_first_error`, by pydantic error type.
_MESSAGES = {
    "string_too_long": "%s is too long",
    "string_type": "%s is not a string",
    "string_pattern_mismatch": "%s does not match pattern",
    "less_than_equal": "%s is too large",
    "greater_than_equal": "%s is too small",
    "int_type": "%s is not a number",
    "bool_type": "%s is not a boolean",
    "literal_error": "%s has unexpected value",
    "list_type": "%s is not an array",
    "value_error": "%s is not valid",
}
UNIQUE_FIELDS = ("name", "slug", "tags", "timeout", "grace")


class Spec(BaseModel):
    """A check as POST /api/v3/checks/ takes it (absent fields: unchanged on update)."""

    model_config = ConfigDict(strict=True, extra="ignore")

    name: str | None = Field(None, max_length=100)
    slug: str | None = Field(None, max_length=100, pattern=r"^[a-z0-9-_]*$")
    tags: str | None = None
    desc: str | None = None
    timeout: int | None = Field(None, ge=60, le=31536000)
    grace: int | None = Field(None, ge=60, le=31536000)
    schedule: str | None = Field(None, max_length=100)
    tz: str | None = None
    manual_resume: bool | None = None
    methods: Literal["", "POST"] | None = None
    channels: str | None = None
    unique: list[Literal["name", "slug", "tags", "timeout", "grace"]] | None = None

    @field_validator("schedule")
    @classmethod
    def _cron(cls, value: str) -> str:
        if len(value.split()) != 5 or not croniter.is_valid(value):
            raise ValueError("not a valid cron expression")
        return value

    @field_validator("tz")
    @classmethod
    def _tz(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError("not a valid timezone") from None
        return value


class SpecError(Exception):
    """A body Healthchecks would refuse with 400 and this message."""


def parse_spec(body: dict[str, Any]) -> Spec:
    # As Healthchecks does: null is no field's type, so a float in its place fails validation.
    fields = {k: 0.0 if v is None else v for k, v in body.items() if k != "api_key"}
    try:
        return Spec.model_validate(fields)
    except ValidationError as error:
        first = error.errors()[0]
        subject = str(first["loc"][0]) if first["loc"] else "body"
        if len(first["loc"]) == 2:
            subject = f"an item in '{subject}'"
        if first["type"] == "value_error" and subject == "schedule":
            template = "%s is not a valid cron expression"
        elif first["type"] == "value_error" and subject == "tz":
            template = "%s is not a valid timezone"
        else:
            template = _MESSAGES.get(first["type"], "%s is not valid")
        raise SpecError("json validation error: " + template % subject) from None


def unique_key(monitor_id: str) -> str:
    """The read-only key's stable name of a check (Healthchecks: a SHA-1 of half its code)."""
    return hashlib.sha1(monitor_id.encode()).hexdigest()


def document(spec: Spec, base: dict[str, Any]) -> dict[str, Any]:
    """The monitor document (config schema) with the spec's fields applied to `base`; a merge
    patch when `base` is empty (None removes a key)."""
    out = dict(base)
    if spec.name is not None:
        out["name"] = spec.name or None
    if spec.slug is not None:
        out["slug"] = spec.slug or None
    if spec.tags is not None:
        out["tags"] = spec.tags.split()
    if spec.desc is not None:
        out["description"] = spec.desc or None
    if spec.grace is not None:
        out["grace"] = f"{spec.grace}s"
    if spec.tz is not None:
        out["tz"] = spec.tz
    if spec.schedule:
        out["schedule"], out["period"] = spec.schedule, None
    elif spec.timeout is not None:
        out["period"], out["schedule"] = f"{spec.timeout}s", None
    return out


@dataclass(frozen=True, slots=True)
class Live:
    """What a check shows besides its config: the runtime's view of the heartbeat."""

    state: MonitorState
    row: HeartbeatRow | None
    next_deadline: Millis | None
    now: Millis
    n_pings: int
    channels: list[str]
    timezone: str  # the site's: a schedule's without its own


def status(monitor: HeartbeatMonitor, live: Live) -> str:
    """Healthchecks' status: new, up, grace, down, paused or started."""
    if live.state is MonitorState.PAUSED:
        return "paused"
    row = live.row
    running = (
        row is not None
        and row.started_at is not None
        and (row.last_ping_at is None or row.started_at >= row.last_ping_at)
    )
    if running and live.state is not MonitorState.DOWN:
        return "started"
    if live.state is MonitorState.DOWN:
        return "down"
    if row is None or row.last_ping_at is None:
        return "new"
    if live.next_deadline is not None and live.now >= live.next_deadline - monitor.grace_ms:
        return "grace"
    return "up"


def check_dict(
    monitor: HeartbeatMonitor, live: Live, base: str, token: str | None, readonly: bool
) -> dict[str, Any]:
    """A heartbeat as Healthchecks' `Check.to_dict` answers it."""
    row = live.row
    last = row.last_ping_at if row else None
    next_ping = live.next_deadline - monitor.grace_ms if live.next_deadline and last else None
    out: dict[str, Any] = {
        "name": monitor.name or "",
        "slug": monitor.slug or "",
        "tags": " ".join(monitor.tags),
        "desc": monitor.description or "",
        "grace": monitor.grace_ms // 1000,
        "n_pings": live.n_pings,
        "status": status(monitor, live),
        "started": status(monitor, live) == "started",
        "last_ping": iso(last) if last is not None else None,
        "next_ping": iso(next_ping) if next_ping is not None else None,
        "manual_resume": True,  # uptally: a ping never resumes a paused monitor
        "methods": "",
        "subject": "",
        "subject_fail": "",
        "start_kw": "",
        "success_kw": "",
        "failure_kw": "",
        "filter_subject": False,
        "filter_body": False,
    }
    if readonly or monitor.uuid is None:
        out["unique_key"] = unique_key(monitor.id)
    if not readonly:
        address = str(monitor.uuid) if monitor.uuid is not None else token
        out["ping_url"] = f"{base}/ping/{address}" if address else None
        if monitor.uuid is not None:
            update_url = f"{base}/api/v3/checks/{monitor.uuid}"
            out["update_url"] = update_url
            out["pause_url"] = f"{update_url}/pause"
            out["resume_url"] = f"{update_url}/resume"
        out["channels"] = ",".join(live.channels)
    if monitor.period is not None:
        out["timeout"] = monitor.period // 1000
    else:
        out["schedule"] = monitor.schedule
        out["tz"] = monitor.tz or live.timezone
    return out
