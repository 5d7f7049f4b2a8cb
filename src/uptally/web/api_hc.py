"""Healthchecks' Management API v3 subset at /api/v3/: heartbeat monitors as its checks.

`X-Api-Key` (or `api_key` in a JSON body) takes an uptally API token: the read scope reads
(and sees Healthchecks' read-only shape), the write scope changes. Checks made here are
heartbeat monitors managed at runtime, changed through the one managed path; errors answer
`{"error": "..."}` as Healthchecks does (see hc_http).
"""

from __future__ import annotations

import contextlib
import uuid as uuidlib
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from uptally.config.managed import MONITOR
from uptally.config.schema import HeartbeatMonitor
from uptally.managed.changes import (
    DocumentInvalid,
    InUse,
    NotFound,
    PreconditionFailed,
    Provisioned,
)
from uptally.notify.routing import Route, scope_of
from uptally.pausing import PauseConflict
from uptally.runtime import Runtime
from uptally.store import heartbeats as heartbeat_store
from uptally.tokens import Principal
from uptally.web.deps import base_url, runtime_of
from uptally.web.hc_checks import (
    UNIQUE_FIELDS,
    Live,
    Spec,
    SpecError,
    check_dict,
    document,
    parse_spec,
)
from uptally.web.hc_http import HcError, add_route, find, heartbeats

router = APIRouter(prefix="/api/v3", include_in_schema=False)


def _channels(runtime: Runtime, monitor: HeartbeatMonitor) -> list[str]:
    """The channels a monitor's down notifications go to (uptally routes by channel)."""
    scope = scope_of({"monitor": monitor.id}, runtime.config)
    return sorted(
        channel.id
        for channel in runtime.config.notifications.channels
        if Route(
            f"channel:{channel.id}",
            tuple(channel.events),
            frozenset(channel.components),
            frozenset(channel.monitors),
        ).matches("monitor.down", scope)
    )


async def _dicts(
    request: Request, monitors: list[HeartbeatMonitor], principal: Principal
) -> list[dict[str, Any]]:
    runtime = runtime_of(request)
    async with runtime.db.connect() as conn:
        counts = await heartbeat_store.count_pings(conn, [m.id for m in monitors])
    base, now = base_url(request), runtime.clock.now_ms()
    readonly = not principal.allows("write")
    out = []
    for monitor in monitors:
        live = Live(
            state=runtime.monitor_state(monitor.id),
            row=runtime.heartbeats.row(monitor.id),
            next_deadline=runtime.heartbeats.next_deadline(monitor.id),
            now=now,
            n_pings=counts.get(monitor.id, 0),
            channels=_channels(runtime, monitor),
            timezone=runtime.config.site.timezone,
        )
        token = runtime.heartbeats.token(monitor.id)
        out.append(check_dict(monitor, live, base, token, readonly))
    return out


async def _one(
    request: Request, monitor_id: str, principal: Principal, status: int = 200
) -> Response:
    monitor = runtime_of(request).config.monitor(monitor_id)
    if not isinstance(monitor, HeartbeatMonitor):  # deleted meanwhile
        raise HcError(404, "not found")
    (shown,) = await _dicts(request, [monitor], principal)
    return JSONResponse(shown, status_code=status)


async def _list(request: Request, key: str, principal: Principal, body: dict[str, Any]) -> Response:
    tags = set(request.query_params.getlist("tag"))
    slug = request.query_params.get("slug")
    chosen = [
        m
        for m in heartbeats(runtime_of(request))
        if tags.issubset(m.tags) and (not slug or m.slug == slug)
    ]
    return JSONResponse({"checks": await _dicts(request, chosen, principal)})


async def _write(runtime: Runtime, action: Callable[[], Awaitable[Any]]) -> Any:
    """The managed path's refusals as Healthchecks-style errors."""
    try:
        return await action()
    except DocumentInvalid as error:
        problem = error.problems[0] if error.problems else None
        where = f"{problem.pointer}: " if problem and problem.pointer else ""
        message = problem.message if problem else str(error)
        raise HcError(400, f"json validation error: {where}{message}") from None
    except Provisioned as error:
        raise HcError(409, str(error)) from None
    except (InUse, PreconditionFailed) as error:
        raise HcError(409, str(error)) from None
    except NotFound:
        raise HcError(404, "not found") from None


def _check_channels(spec: Spec) -> None:
    if spec.channels not in (None, "*"):
        raise HcError(
            400,
            'channels: only "*" is accepted; uptally routes notifications by channel '
            "(notifications.channels[].monitors)",
        )


def _matches(monitor: HeartbeatMonitor, spec: Spec) -> bool:
    """Healthchecks' `unique` lookup: every named field equals the spec's."""
    shown = {
        "name": monitor.name or "",
        "slug": monitor.slug or "",
        "tags": " ".join(monitor.tags),
        "timeout": monitor.period // 1000 if monitor.period is not None else None,
        "grace": monitor.grace_ms // 1000,
    }
    wanted = {field: getattr(spec, field) for field in spec.unique or ()}
    if field_tags := wanted.get("tags"):
        wanted["tags"] = " ".join(str(field_tags).split())
    return all(shown[field] == value for field, value in wanted.items())


def _existing(runtime: Runtime, spec: Spec) -> HeartbeatMonitor | None:
    """The check `unique` names, if any (only checks made with a uuid are candidates)."""
    if not spec.unique or any(getattr(spec, field) is None for field in spec.unique):
        return None
    assert set(spec.unique) <= set(UNIQUE_FIELDS)
    candidates = (m for m in heartbeats(runtime) if m.uuid is not None and _matches(m, spec))
    return next(candidates, None)


async def _create(
    request: Request, key: str, principal: Principal, body: dict[str, Any]
) -> Response:
    runtime = runtime_of(request)
    try:
        spec = parse_spec(body)
    except SpecError as error:
        raise HcError(400, str(error)) from None
    _check_channels(spec)
    found = _existing(runtime, spec)
    if found is not None:
        patch = document(spec, {})
        await _write(
            runtime,
            lambda: runtime.changes.patch(
                MONITOR, found.id, patch, principal.actor, None, secrets=False
            ),
        )
        return await _one(request, found.id, principal)
    code = uuidlib.uuid4()
    doc = document(spec, {"kind": "heartbeat", "period": "86400s", "grace": "3600s"})
    doc = {k: v for k, v in doc.items() if v is not None}
    doc["id"], doc["uuid"] = f"hc-{code.hex[:12]}", str(code)
    change = await _write(
        runtime, lambda: runtime.changes.create(MONITOR, doc, principal.actor, secrets=False)
    )
    return await _one(request, change.id, principal, 201)


async def _get(request: Request, key: str, principal: Principal, body: dict[str, Any]) -> Response:
    monitor = find(runtime_of(request), key, by_unique_key=True)
    return await _one(request, monitor.id, principal)


async def _update(
    request: Request, key: str, principal: Principal, body: dict[str, Any]
) -> Response:
    runtime = runtime_of(request)
    monitor = find(runtime, key)
    try:
        spec = parse_spec(body)
    except SpecError as error:
        raise HcError(400, str(error)) from None
    _check_channels(spec)
    patch = document(spec, {})
    if patch:
        await _write(
            runtime,
            lambda: runtime.changes.patch(
                MONITOR, monitor.id, patch, principal.actor, None, secrets=False
            ),
        )
    return await _one(request, monitor.id, principal)


async def _delete(
    request: Request, key: str, principal: Principal, body: dict[str, Any]
) -> Response:
    runtime = runtime_of(request)
    monitor = find(runtime, key)
    (shown,) = await _dicts(request, [monitor], principal)
    await _write(
        runtime, lambda: runtime.changes.delete(MONITOR, monitor.id, principal.actor, None)
    )
    return JSONResponse(shown)


async def _pause(
    request: Request, key: str, principal: Principal, body: dict[str, Any]
) -> Response:
    runtime = runtime_of(request)
    monitor = find(runtime, key)
    with contextlib.suppress(PauseConflict):  # Healthchecks pauses a paused check again
        await runtime.pause(monitor.id, principal.actor)
    return await _one(request, monitor.id, principal)


async def _resume(
    request: Request, key: str, principal: Principal, body: dict[str, Any]
) -> Response:
    runtime = runtime_of(request)
    monitor = find(runtime, key)
    try:
        await runtime.resume(monitor.id, principal.actor)
    except PauseConflict:
        return PlainTextResponse("check is not paused", status_code=409)
    return await _one(request, monitor.id, principal)


async def _channel_list(
    request: Request, key: str, principal: Principal, body: dict[str, Any]
) -> Response:
    channels = []
    for channel in runtime_of(request).config.notifications.channels:
        url = channel.url if isinstance(channel.url, str) else ""
        kind = url.partition("://")[0].partition("+")[0] if "://" in url else "apprise"
        channels.append({"id": channel.id, "name": channel.id, "kind": kind})
    return JSONResponse({"channels": channels})


async def _badges(
    request: Request, key: str, principal: Principal, body: dict[str, Any]
) -> Response:
    """uptally's badges are per monitor (SVG only), so each check's badge stands in every format."""
    base = base_url(request)
    badges = {}
    for monitor in heartbeats(runtime_of(request)):
        svg = f"{base}/badge/{monitor.id}/status.svg"
        formats = ("svg", "svg3", "json", "json3", "shields", "shields3")
        badges[monitor.id] = dict.fromkeys(formats, svg)
    return JSONResponse({"badges": badges})


add_route(router, "/checks/", "GET", "read", _list)
add_route(router, "/checks/", "POST", "write", _create)
add_route(router, "/checks/{key}", "GET", "read", _get)
add_route(router, "/checks/{key}", "POST", "write", _update)
add_route(router, "/checks/{key}", "DELETE", "write", _delete)
add_route(router, "/checks/{key}/pause", "POST", "write", _pause)
add_route(router, "/checks/{key}/resume", "POST", "write", _resume)
add_route(router, "/channels/", "GET", "read", _channel_list)
add_route(router, "/badges/", "GET", "read", _badges)
