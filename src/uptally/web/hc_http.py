"""Healthchecks' API v3 over HTTP: its key and error conventions, and its checks by address."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse

from uptally.config.schema import HeartbeatMonitor
from uptally.runtime import Runtime
from uptally.tokens import Principal
from uptally.web.auth import client_of, token_principal
from uptally.web.hc_checks import unique_key


class HcError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


Handler = Callable[[Request, str, Principal, dict[str, Any]], Awaitable[Response]]


async def serve(request: Request, scope: str, key: str, handler: Handler) -> Response:
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


def heartbeats(runtime: Runtime) -> list[HeartbeatMonitor]:
    return [m for m in runtime.config.monitors if isinstance(m, HeartbeatMonitor)]


def find(runtime: Runtime, key: str, by_unique_key: bool = False) -> HeartbeatMonitor:
    """The check a path names by its uuid (or, for reads, its unique key); 404 otherwise."""
    for monitor in heartbeats(runtime):
        if monitor.uuid is not None and str(monitor.uuid) == key.lower():
            return monitor
        if by_unique_key and unique_key(monitor.id) == key:
            return monitor
    raise HcError(404, "not found")


def add_route(router: APIRouter, path: str, method: str, scope: str, handler: Handler) -> None:
    """`handler` at `path`, behind Healthchecks' key check for `scope` (read or write)."""

    async def endpoint(request: Request) -> Response:
        return await serve(request, scope, request.path_params.get("key", ""), handler)

    router.add_api_route(path, endpoint, methods=[method], response_class=Response)
