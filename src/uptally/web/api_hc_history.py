"""Healthchecks' API v3: a check's pings (with their bodies) and flips, from uptally's stores."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse, PlainTextResponse

from uptally.clock import iso
from uptally.store import heartbeats as heartbeat_store
from uptally.store import outages as outage_store
from uptally.tokens import Principal
from uptally.web.deps import base_url, runtime_of
from uptally.web.hc_http import HcError, add_route, find

router = APIRouter(prefix="/api/v3", include_in_schema=False)
PING_LIMIT = 100  # Healthchecks' free plan shows the newest 100 pings


async def _pings(
    request: Request, key: str, principal: Principal, body: dict[str, Any]
) -> Response:
    runtime = runtime_of(request)
    monitor = find(runtime, key)
    async with runtime.db.connect() as conn:
        stored = await heartbeat_store.list_pings(conn, monitor.id, PING_LIMIT)
        total = (await heartbeat_store.count_pings(conn, [monitor.id])).get(monitor.id, 0)
    body_base = f"{base_url(request)}/api/v3/checks/{key}/pings"
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
                "body_url": f"{body_base}/{total - index}/body" if ping.body else None,
                "exitstatus": ping.exit_code,
            }
        )
    return JSONResponse({"pings": pings})


async def _ping_body(
    request: Request, key: str, principal: Principal, body: dict[str, Any]
) -> Response:
    """The body kept with ping number n (the first 10 KiB), among the newest PING_LIMIT."""
    runtime = runtime_of(request)
    monitor = find(runtime, key)
    number = str(request.path_params.get("n", ""))
    if not number.isdigit():
        raise HcError(404, "not found")
    async with runtime.db.connect() as conn:
        stored = await heartbeat_store.list_pings(conn, monitor.id, PING_LIMIT)
        total = (await heartbeat_store.count_pings(conn, [monitor.id])).get(monitor.id, 0)
    index = total - int(number)
    if not 0 <= index < len(stored) or not stored[index].body:
        raise HcError(404, "not found")
    return PlainTextResponse(stored[index].body)


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
    monitor = find(runtime, key, by_unique_key=True)
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


add_route(router, "/checks/{key}/pings/", "GET", "read", _pings)
add_route(router, "/checks/{key}/pings/{n}/body", "GET", "read", _ping_body)
add_route(router, "/checks/{key}/flips/", "GET", "read", _flips)
