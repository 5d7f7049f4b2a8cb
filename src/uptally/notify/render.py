"""Short human messages for events, linking back to the status page (pure)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from uptally.config.schema import Config
from uptally.incidents.texts import format_duration, format_time, join_names
from uptally.notify.transport import Message

Data = Mapping[str, Any]


def render(kind: str, subject: str, data: Data, config: Config) -> Message:
    renderer = _RENDERERS.get(kind) or _RENDERERS.get(kind.split(".", 1)[0] + ".*", _generic)
    return renderer(kind, subject, data, config)


def link(config: Config, path: str = "/") -> str | None:
    base = config.site.url
    return f"{base}{path}" if base else None


def _monitor(kind: str, subject: str, data: Data, config: Config) -> Message:
    monitor_id = str(data.get("monitor") or subject)
    found = config.monitor(monitor_id)
    name = found.title if found is not None else monitor_id
    tz = config.site.timezone
    locations = [str(x) for x in data.get("locations") or ()]
    seen = f" (seen from {join_names(locations)})" if locations else ""
    reason = str(data.get("reason") or "").strip()
    start = data.get("start")
    if kind == "monitor.down":
        since = f" since {format_time(int(start), tz)}" if isinstance(start, int) else ""
        again = " again after maintenance" if data.get("after_maintenance") else ""
        body = f"{name} is down{again}{since}{seen}."
        if reason:
            body += f" {reason}"
        return Message(f"🔴 {name} is down", body, link(config))
    if kind == "monitor.up":
        duration = data.get("duration_ms")
        lasted = f" after {format_duration(int(duration))}" if isinstance(duration, int) else ""
        if data.get("retracted"):
            body = f"{name}: the outage was not confirmed by enough locations{seen}."
            return Message(f"✅ {name} is up (not confirmed)", body, link(config))
        end = data.get("end")
        when = f" at {format_time(int(end), tz)}" if isinstance(end, int) else ""
        body = f"{name} is up again{when}{lasted}{seen}."
        return Message(f"✅ {name} is up{lasted}", body, link(config))
    body = f"{name} fails from some locations{seen}, not enough to call it down."
    return Message(f"🟠 {name} is degraded", body, link(config))


def _incident(kind: str, subject: str, data: Data, config: Config) -> Message:
    incident_id = str(data.get("incident") or subject)
    title = str(data.get("title") or "Incident")
    status = str(data.get("status") or "").replace("_", " ")
    message = str(data.get("message") or "").strip()
    if data.get("postmortem"):
        head, body = f"Postmortem: {title}", "The postmortem is published."
    elif kind == "incident.created":
        head, body = f"Incident: {title}", message or f"New incident ({status})."
    elif kind == "incident.resolved":
        head, body = f"Resolved: {title}", message or "The incident is resolved."
    else:
        head, body = f"{title} ({status})", message or f"The incident is now {status}."
    components = _components(data, config)
    if components:
        body += f"\nAffected: {components}."
    return Message(head, body, link(config, f"/incidents/{incident_id}"))


def _maintenance(kind: str, subject: str, data: Data, config: Config) -> Message:
    title = str(data.get("title") or "Maintenance")
    tz = config.site.timezone
    start, end = data.get("start"), data.get("end")
    span = ""
    if isinstance(start, int) and isinstance(end, int):
        span = f" from {format_time(start, tz)} to {format_time(end, tz)}"
    verb = {
        "maintenance.scheduled": "Maintenance scheduled",
        "maintenance.started": "Maintenance started",
        "maintenance.completed": "Maintenance completed",
    }.get(kind, "Maintenance")
    body = f"{verb}: {title}{span if kind != 'maintenance.completed' else ''}."
    message = str(data.get("message") or "").strip()
    if message:
        body += f"\n{message}"
    components = _components(data, config)
    if components:
        body += f"\nAffected: {components}."
    return Message(f"{verb}: {title}", body, link(config))


def _probe(kind: str, subject: str, data: Data, config: Config) -> Message:
    location = str(data.get("location") or subject)
    state = {
        "probe.offline": "is offline (silent)",
        "probe.degraded": "cannot reach its canaries: its results do not count",
        "probe.online": "is back online",
    }.get(kind, kind)
    return Message(f"Probe {location} {state.split(':')[0]}", f"Probe {location} {state}.")


def _commitment(kind: str, subject: str, data: Data, config: Config) -> Message:
    title = str(data.get("title") or subject)
    what = {
        "first_post": "the first public update",
        "update": "the next update",
        "postmortem": "the postmortem",
    }.get(str(data.get("commitment")), "a commitment")
    due = data.get("due_at")
    when = format_time(int(due), config.site.timezone) if isinstance(due, int) else "soon"
    if data.get("state") == "overdue":
        head, body = f"Overdue: {what} for {title}", f"{what.capitalize()} was due at {when}."
    else:
        head, body = f"Due: {what} for {title}", f"{what.capitalize()} is due at {when}."
    incident = str(data.get("incident") or subject)
    return Message(head, body, link(config, f"/incidents/{incident}"))


def _test(kind: str, subject: str, data: Data, config: Config) -> Message:
    text = str(data.get("message") or "A test message.")
    return Message(f"Test message from {config.site.title}", text, link(config))


def _generic(kind: str, subject: str, data: Data, config: Config) -> Message:
    text = str(data.get("message") or data.get("title") or subject)
    return Message(f"{kind}: {subject}", text, link(config))


def _components(data: Data, config: Config) -> str:
    raw = data.get("components")
    names = list(raw) if isinstance(raw, dict | list) else []
    titles = {c.id: c.title for c in config.components}
    return join_names([titles.get(str(n), str(n)) for n in names])


_RENDERERS: dict[str, Callable[[str, str, Data, Config], Message]] = {
    "monitor.*": _monitor,
    "incident.*": _incident,
    "maintenance.*": _maintenance,
    "probe.*": _probe,
    "commitment.*": _commitment,
    "channel.test": _test,
}
