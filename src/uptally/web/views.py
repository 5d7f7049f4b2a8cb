"""Turn runtime state and stored rows into API shapes."""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

from uptally.clock import iso
from uptally.config.pointers import json_pointer
from uptally.config.schema import ActiveMonitor, HeartbeatMonitor, monitor_document
from uptally.evaluator import LocationSnapshot
from uptally.livestate import location_state
from uptally.redaction import MASK, Redactor
from uptally.results import Result
from uptally.runtime import Runtime
from uptally.store.heartbeats import Ping
from uptally.store.outages import StoredOutage
from uptally.web.schemas import LocationOut, MonitorOut, OutageOut, PingOut, ResultOut, SpanOut


def result_out(result: Result) -> ResultOut:
    return ResultOut(
        id=result.id,
        monitor=result.monitor,
        location=result.location,
        at=iso(result.at) or "",
        ok=result.ok,
        latency_ms=result.latency_ms,
        error=result.error,
        message=result.message,
    )


def ping_out(ping: Ping) -> PingOut:
    """A stored ping in Healthchecks' terms: an exit status is a success (0) or a failure."""
    kind = ping.kind
    if kind == "exit":
        kind = "success" if ping.exit_code == 0 else "fail"
    duration = None if ping.duration_ms is None else round(ping.duration_ms / 1000, 2)
    return PingOut(
        id=ping.id,
        monitor=ping.monitor,
        at=iso(ping.at) or "",
        kind=kind,
        exit_status=ping.exit_code,
        method=ping.method,
        remote=ping.remote,
        user_agent=ping.user_agent,
        rid=ping.rid,
        duration_s=duration,
        body=ping.body,
    )


def outage_out(stored: StoredOutage, monitor_deleted: bool = False) -> OutageOut:
    """`monitor_deleted`: its monitor is configured no more (deleted, or gone from the file)."""
    outage = stored.outage
    return OutageOut(
        id=outage.id,
        monitor=outage.monitor or None,
        component=stored.component,
        start=iso(outage.start) or "",
        end=iso(outage.end),
        verified=outage.verified,
        locations={
            name: SpanOut(start=iso(span.start) or "", end=iso(span.end))
            for name, span in outage.locations.items()
        },
        reason=outage.reason,
        source="manual" if stored.source == "manual" else "detected",
        duration_s=None if outage.end is None else (outage.end - outage.start) / 1000,
        monitor_deleted=monitor_deleted,
    )


_SECRET_REF = re.compile(r"\$\{secret:[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}\}")


def shown_config(monitor: Any, secret_keys: Iterable[str]) -> dict[str, Any]:
    """A monitor as config data, as the API shows it: credentials and secret query values in
    URLs and every header value masked (`${secret:NAME}` references stay as written). What is
    masked is sent again in full (or as a reference) to change it: see `masked_values`."""
    redactor = Redactor.with_keys(secret_keys)
    shown: dict[str, Any] = _masked(monitor_document(monitor), redactor)
    return shown


def masked_values(document: Any, path: tuple[str | int, ...] = ()) -> list[str]:
    """JSON pointers of values in a body that hold the mask a GET shows in place of a secret
    (sent back unchanged, they would replace the secret with the mask)."""
    found: list[str] = []
    if isinstance(document, dict):
        for key, value in document.items():
            found += masked_values(value, (*path, key))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            found += masked_values(value, (*path, index))
    elif isinstance(document, str) and MASK in document:
        found.append(json_pointer(path))
    return found


def _masked(value: Any, redactor: Redactor, key: str = "") -> Any:
    if isinstance(value, dict):
        if key == "headers":
            return {name: v if _SECRET_REF.fullmatch(str(v)) else MASK for name, v in value.items()}
        return {k: _masked(v, redactor, k) for k, v in value.items()}
    if isinstance(value, list):
        return [_masked(item, redactor, key) for item in value]
    if key == "url" and isinstance(value, str):
        return redactor.url(value)
    return value


def shown_target(monitor: Any, secret_keys: Iterable[str]) -> str | None:
    """What the monitor checks, as the API shows it: URL credentials and secret query values
    masked (`${secret:NAME}` references stay as written)."""
    if getattr(monitor, "url", None):
        return Redactor.with_keys(secret_keys).url(str(monitor.url))
    if getattr(monitor, "host", None):
        port = getattr(monitor, "port", None)
        return f"{monitor.host}:{port}" if port else str(monitor.host)
    return None


def monitor_out(
    runtime: Runtime, monitor: Any, base_url: str | None, components: list[str] | None = None
) -> MonitorOut:
    """A monitor as the API shows it; a heartbeat's ping URL only with `base_url` (whoever
    holds it can record a ping: the caller passes None to a token without the write scope).
    `components`: the ids of the components it belongs to, if known (a list's index has them;
    looking them up is a pass over every component)."""
    status = runtime.evaluator.status(monitor.id)
    pause = runtime.pausing.paused.get(monitor.id)
    snapshots: dict[str, LocationSnapshot] = {
        snap.location: snap for snap in runtime.evaluator.location_snapshots(monitor.id)
    }
    names = list(monitor.locations) if isinstance(monitor, ActiveMonitor) else ["local"]
    locations = {}
    rules = runtime.evaluator.rules(monitor.id)
    now = runtime.clock.now_ms()
    for name in names:
        snap = snapshots.get(name)
        locations[name] = LocationOut(
            state=location_state(snap, rules, now),
            since=iso(snap.since) if snap else None,
            consecutive_failures=snap.consecutive_failures if snap else 0,
            last_result=result_out(snap.last) if snap and snap.last else None,
        )
    if components is None:
        components = [c.id for c in runtime.config.components if monitor.id in c.monitors]
    out = MonitorOut(
        id=monitor.id,
        name=monitor.title,
        kind=monitor.kind,
        description=monitor.description,
        enabled=monitor.enabled,
        state=runtime.monitor_state(monitor.id).value,
        since=iso(pause.start) if pause else iso(status.since) if status else None,
        target=shown_target(monitor, runtime.config.security.secret_query_keys),
        interval_s=monitor.interval / 1000 if isinstance(monitor, ActiveMonitor) else None,
        timeout_s=monitor.timeout / 1000 if isinstance(monitor, ActiveMonitor) else None,
        locations=locations,
        components=components,
        source="api" if monitor.id in runtime.managed["monitor"] else "config",
        provisioned_by=runtime.config.origin("monitors", monitor.id),
        tags=list(monitor.tags),
    )
    if isinstance(monitor, HeartbeatMonitor):
        token = runtime.heartbeats.token(monitor.id)
        out.ping_url = f"{base_url}/ping/{token}" if token and base_url is not None else None
        out.next_deadline = iso(runtime.heartbeats.next_deadline(monitor.id))
    return out
