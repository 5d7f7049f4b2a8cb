"""Heartbeat pings: GET/POST /ping/{token}[/start|/fail|/{exit_code}] answer `OK` once stored."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

from uptally.heartbeats import BODY_LIMIT, PingInput
from uptally.runtime import Runtime

MAX_BODY = 100 * 1024  # read at most this much; the first 10 KiB are kept
_HEADERS = {"Cache-Control": "no-store"}


async def _read_body(request: Request) -> bytes | None:
    data = bytearray()
    async for chunk in request.stream():
        data.extend(chunk)
        if len(data) > MAX_BODY:
            return None
    return bytes(data[:BODY_LIMIT])


async def ping(request: Request) -> PlainTextResponse:
    runtime: Runtime = request.app.state.runtime
    token = request.path_params["token"]
    suffix = request.path_params.get("suffix")
    exit_code: int | None = None
    if suffix is None:
        kind = "success"
    elif suffix in ("start", "fail"):
        kind = suffix
    elif suffix.isdigit() and int(suffix) <= 255:
        kind, exit_code = "exit", int(suffix)
    else:
        return PlainTextResponse("not found", status_code=404, headers=_HEADERS)
    body = b""
    if request.method == "POST":
        read = await _read_body(request)
        if read is None:
            return PlainTextResponse("body too large", status_code=413, headers=_HEADERS)
        body = read
    client = request.client.host if request.client else None
    known = await runtime.heartbeats.ping(
        token,
        PingInput(
            kind,
            exit_code,
            request.method,
            body,
            client,
            request.headers.get("user-agent"),
        ),
    )
    if not known:
        return PlainTextResponse("not found", status_code=404, headers=_HEADERS)
    return PlainTextResponse("OK", headers=_HEADERS)


routes = [
    Route("/ping/{token}", ping, methods=["GET", "POST", "HEAD"]),
    Route("/ping/{token}/{suffix}", ping, methods=["GET", "POST", "HEAD"]),
]
