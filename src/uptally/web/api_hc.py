"""Healthchecks' Management API v3 subset at /api/v3/: heartbeat monitors as its checks.

`X-Api-Key` (or `api_key` in a JSON body) takes an uptally API token: the read scope reads
(and sees Healthchecks' read-only shape), the write scope changes. Checks made here are
heartbeat monitors managed at runtime, changed through the one managed path; errors answer
`{"error": "..."}` as Healthchecks does.
"""

from __future__ import annotations

import contextlib
import json
import uuid as uuidlib
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from uptally.clock import iso
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
from uptally.store import outages as outage_store
from uptally.tokens import Principal
from uptally.web.auth import client_of, token_principal
from uptally.web.deps import base_url, runtime_of
from uptally.web.hc_checks import (
    UNIQUE_FIELDS,
    Live,
    Spec,
    SpecError,
    check_dict,
    document,
    parse_spec,
    unique_key,
)

router = APIRouter(prefix="/api/v3", include_in_schema=False)
PING_LIMIT = 100  # Healthchecks' free plan shows the newest 100 pings


class HcError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


Handler = Callable[[Request, str, Principal, dict[str, Any]], Awaitable[Response]]


async def _serve(request: Request, scope: str, key: str, handler: Handler) -> Response:
    """Authenticate as Healthchecks does, run the handler, and answer its errors its way."""
    try:
        body = await _body(request)
        presented = request.headers.get("x-api-key") or str(body.get("api_key") or "")
        if not presented:
            raise HcError(401, "missing api key")
        limiter = request.app.state.auth_limiter
        if limiter.retry_after(client_of(request)) is not None:
            raise HcError(429, "too many failed authentication attempts")
        principal, _ = await token_principal(request, presented)
        if principal is None:
            raise HcError(401, "wrong api key")
        if not principal.allows(scope):
            raise HcError(403, f"this api key lacks the {scope} scope (a read-only key)")
        return await handler(request, key, principal, body)
    except HcError as error:
        return JSONResponse({"error": str(error)}, status_code=error.status)


async def _body(request: Request) -> dict[str, Any]:
    if request.method != "POST":
        return {}
    raw = await request.body()
    if not raw:
        return {}
    try:
        parsed = json.loads(raw)
    except ValueError:
        raise HcError(400, "could not parse request body") from None
    if not isinstance(parsed, dict):
        raise HcError(400, "json validation error: value is not an object")
    return parsed


def _heartbeats(runtime: Runtime) -> list[HeartbeatMonitor]:
    return [m for m in runtime.config.monitors if isinstance(m, HeartbeatMonitor)]


def _find(runtime: Runtime, key: str, by_unique_key: bool = False) -> HeartbeatMonitor:
    """The check a path names by its uuid (or, for reads, its unique key); 404 otherwise."""
    for monitor in _heartbeats(runtime):
        if monitor.uuid is not None and str(monitor.uuid) == key.lower():
            return monitor
        if by_unique_key and unique_key(monitor.id) == key:
            return monitor
    raise HcError(404, "not found")


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
        for m in _heartbeats(runtime_of(request))
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
    candidates = (m for m in _heartbeats(runtime) if m.uuid is not None and _matches(m, spec))
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
    monitor = _find(runtime_of(request), key, by_unique_key=True)
    return await _one(request, monitor.id, principal)


async def _update(
    request: Request, key: str, principal: Principal, body: dict[str, Any]
) -> Response:
    runtime = runtime_of(request)
    monitor = _find(runtime, key)
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
    monitor = _find(runtime, key)
    (shown,) = await _dicts(request, [monitor], principal)
    await _write(
        runtime, lambda: runtime.changes.delete(MONITOR, monitor.id, principal.actor, None)
    )
    return JSONResponse(shown)


async def _pause(
    request: Request, key: str, principal: Principal, body: dict[str, Any]
) -> Response:
    runtime = runtime_of(request)
    monitor = _find(runtime, key)
    with contextlib.suppress(PauseConflict):  # Healthchecks pauses a paused check again
        await runtime.pause(monitor.id, principal.actor)
    return await _one(request, monitor.id, principal)


async def _resume(
    request: Request, key: str, principal: Principal, body: dict[str, Any]
) -> Response:
    runtime = runtime_of(request)
    monitor = _find(runtime, key)
    try:
        await runtime.resume(monitor.id, principal.actor)
    except PauseConflict:
        return PlainTextResponse("check is not paused", status_code=409)
    return await _one(request, monitor.id, principal)


async def _pings(
    request: Request, key: str, principal: Principal, body: dict[str, Any]
) -> Response:
    runtime = runtime_of(request)
    monitor = _find(runtime, key)
    async with runtime.db.connect() as conn:
        stored = await heartbeat_store.list_pings(conn, monitor.id, PING_LIMIT)
        total = (await heartbeat_store.count_pings(conn, [monitor.id])).get(monitor.id, 0)
    pings = []
    for index, ping in enumerate(stored):
        failed = ping.kind == "fail" or (ping.kind == "exit" and ping.exit_code != 0)
        kind = "start" if ping.kind == "start" else "fail" if failed else "success"
        pings.append(
            {
                "type": kind,
                "date": iso(ping.at),
                "n": total - index,
                "scheme": request.url.scheme,
                "remote_addr": ping.remote or "",
                "method": ping.method,
                "ua": ping.user_agent or "",
                "rid": None,
                "body_url": None,
                "exitstatus": ping.exit_code,
            }
        )
    return JSONResponse({"pings": pings})


def _seconds_param(request: Request, name: str) -> int | None:
    value = request.query_params.get(name)
    if value is None:
        return None
    if not value.isdigit():
        raise HcError(400, f"{name} is not a number")
    return int(value)


async def _flips(
    request: Request, key: str, principal: Principal, body: dict[str, Any]
) -> Response:
    """Flips from the outages: down at an outage's start, up at its end."""
    runtime = runtime_of(request)
    monitor = _find(runtime, key, by_unique_key=True)
    start, end = _seconds_param(request, "start"), _seconds_param(request, "end")
    seconds = _seconds_param(request, "seconds")
    since = start * 1000 if start is not None else None
    if seconds is not None:
        since = max(since or 0, runtime.clock.now_ms() - seconds * 1000)
    async with runtime.db.connect() as conn:
        stored = await outage_store.list_outages(conn, monitors=[monitor.id])
    flips = []
    for item in stored:
        outage = item.outage
        flips.append((outage.start, 0))
        if outage.end is not None:
            flips.append((outage.end, 1))
    chosen = [
        {"timestamp": iso(at), "up": up}
        for at, up in sorted(flips, reverse=True)
        if (since is None or at >= since) and (end is None or at < end * 1000)
    ]
    return JSONResponse({"flips": chosen})


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
    for monitor in _heartbeats(runtime_of(request)):
        svg = f"{base}/badge/{monitor.id}/status.svg"
        formats = ("svg", "svg3", "json", "json3", "shields", "shields3")
        badges[monitor.id] = dict.fromkeys(formats, svg)
    return JSONResponse({"badges": badges})


def _route(path: str, method: str, scope: str, handler: Handler) -> None:
    async def endpoint(request: Request) -> Response:
        return await _serve(request, scope, request.path_params.get("key", ""), handler)

    router.add_api_route(path, endpoint, methods=[method], response_class=Response)


_route("/checks/", "GET", "read", _list)
_route("/checks/", "POST", "write", _create)
_route("/checks/{key}", "GET", "read", _get)
_route("/checks/{key}", "POST", "write", _update)
_route("/checks/{key}", "DELETE", "write", _delete)
_route("/checks/{key}/pause", "POST", "write", _pause)
_route("/checks/{key}/resume", "POST", "write", _resume)
_route("/checks/{key}/pings/", "GET", "read", _pings)
_route("/checks/{key}/flips/", "GET", "read", _flips)
_route("/channels/", "GET", "read", _channel_list)
_route("/badges/", "GET", "read", _badges)
