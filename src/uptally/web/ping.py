"""Heartbeat pings: GET/POST /ping/{token}[/start|/fail|/{exit_code}] answer `OK` once stored.

This is the hottest path of the HTTP surface (many jobs pinging at once), so it is a plain ASGI
handler in front of the API application, without routing or middleware.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from uptally.heartbeats import BODY_LIMIT, NotStored, PingInput
from uptally.runtime import Runtime

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

PREFIX = "/ping/"
MAX_BODY = 100 * 1024  # read at most this much; the first 10 KiB are kept
_METHODS = ("GET", "POST", "HEAD")


async def handle(scope: Scope, receive: Receive, send: Send, runtime: Runtime) -> None:
    method = scope["method"]
    parts = scope["path"][len(PREFIX) :].split("/")
    if method not in _METHODS:
        await _answer(send, 405, b"method not allowed", method, {"allow": "GET, POST, HEAD"})
        return
    if not 1 <= len(parts) <= 2 or not parts[0]:
        await _answer(send, 404, b"not found", method)
        return
    token = parts[0]
    kind, exit_code = "success", None
    if len(parts) == 2:
        suffix = parts[1]
        if suffix in ("start", "fail"):
            kind = suffix
        elif suffix.isascii() and suffix.isdigit() and len(suffix) <= 3 and int(suffix) <= 255:
            kind, exit_code = "exit", int(suffix)
        else:
            await _answer(send, 404, b"not found", method)
            return
    body = b""
    if method == "POST":
        read = await _read_body(receive)
        if read is None:
            await _answer(send, 413, b"body too large", method)
            return
        body = read
    headers = dict(scope.get("headers") or ())
    client = scope.get("client")
    user_agent = headers.get(b"user-agent", b"").decode("latin-1") or None
    ping = PingInput(kind, exit_code, method, body, client[0] if client else None, user_agent)
    try:
        known = await runtime.heartbeats.ping(token, ping)
    except NotStored as error:
        # Never OK for a ping that is not stored: 503 makes curl --retry try again.
        await _answer(send, 503, str(error).encode(), method, {"retry-after": "5"})
        return
    await _answer(send, 200 if known else 404, b"OK" if known else b"not found", method)


async def _read_body(receive: Receive) -> bytes | None:
    data = bytearray()
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return bytes(data[:BODY_LIMIT])
        data.extend(message.get("body", b""))
        if len(data) > MAX_BODY:
            return None
        if not message.get("more_body"):
            return bytes(data[:BODY_LIMIT])


async def _answer(
    send: Send, status: int, text: bytes, method: str, extra: dict[str, str] | None = None
) -> None:
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(text)).encode()),
        (b"cache-control", b"no-store"),
    ]
    headers.extend((k.encode(), v.encode()) for k, v in (extra or {}).items())
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if method == "HEAD" else text})
