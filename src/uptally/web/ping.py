"""Heartbeat pings, uptally's and Healthchecks' addresses, answered as Healthchecks answers.

`/ping/{token|uuid}[/start|/fail|/log|/{exit_status}]` and
`/ping/{ping_key}/{slug}[/…]` (`?create=1` makes a missing slug's monitor), `?rid=<uuid>`;
`OK` once stored. This is the hottest path of the HTTP surface (many jobs pinging at once), so
it is a plain ASGI handler in front of the API application, without routing or middleware.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qs

from uptally.heartbeats import NotStored, PingInput
from uptally.runtime import Runtime
from uptally.web import ping_create

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

PREFIX = "/ping/"
# A body longer than `heartbeats.max_body` is cut; past this it is refused (413), as Django
# refuses Healthchecks' (DATA_UPLOAD_MAX_MEMORY_SIZE).
HARD_LIMIT = 2_621_440
_METHODS = ("GET", "POST", "HEAD")
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)
_SLUG = re.compile(r"^[-a-zA-Z0-9_]+$")  # Django's slug converter (Healthchecks' URLs)
_ACTIONS = ("start", "fail", "log")


class _Refused(Exception):
    def __init__(self, status: int, text: str) -> None:
        self.status, self.text = status, text


async def handle(scope: Scope, receive: Receive, send: Send, runtime: Runtime) -> None:
    method = scope["method"]
    if method not in _METHODS:
        await _answer(send, 405, b"method not allowed", method, {"allow": "GET, POST, HEAD"})
        return
    query = parse_qs(scope.get("query_string", b"").decode("latin-1"))
    try:
        monitor, action, created = await _resolve(scope["path"][len(PREFIX) :], query, runtime)
        kind, exit_code = _kind(action)
        rid = _rid(query)
    except _Refused as refused:
        await _answer(send, refused.status, refused.text.encode(), method)
        return
    body = b""
    if method == "POST":
        read = await _read_body(receive, runtime.heartbeats.max_body)
        if read is None:
            await _answer(send, 413, b"body too large", method)
            return
        body = read
    headers = dict(scope.get("headers") or ())
    client = scope.get("client")
    user_agent = headers.get(b"user-agent", b"").decode("latin-1") or None
    remote = client[0] if client else None
    ping = PingInput(kind, exit_code, method, body, remote, user_agent, rid)
    try:
        await runtime.heartbeats.record(monitor, ping)
    except (NotStored, KeyError) as error:
        # Never OK for a ping that is not stored: 503 makes curl --retry try again. (KeyError:
        # the monitor was removed meanwhile.)
        message = str(error) if isinstance(error, NotStored) else "the monitor changed; retry"
        await _answer(send, 503, message.encode(), method, {"retry-after": "5"})
        return
    extra = {"ping-body-limit": str(runtime.heartbeats.max_body)}
    if created:
        await _answer(send, 201, b"Created", method, extra)
    else:
        await _answer(send, 200, b"OK", method, extra)


async def _resolve(
    path: str, query: dict[str, list[str]], runtime: Runtime
) -> tuple[str, str, bool]:
    """(monitor, action, whether it was made now) for the path after /ping/."""
    parts = path.split("/")
    heartbeats = runtime.heartbeats
    first = parts[0]
    if first and len(parts) <= 2:
        monitor = heartbeats.addressed(first)
        if monitor is not None or _UUID.match(first):
            if monitor is None:
                raise _Refused(404, "not found")
            return monitor, parts[1] if len(parts) == 2 else "", False
    if len(parts) not in (2, 3) or not (_SLUG.match(first) and _SLUG.match(parts[1])):
        raise _Refused(404, "not found")
    slug, action = parts[1], parts[2] if len(parts) == 3 else ""
    if len(parts) == 3 and action not in _ACTIONS and not action.isdigit():
        raise _Refused(404, "not found")
    if slug != slug.lower():
        raise _Refused(400, "invalid url format")
    monitor = heartbeats.by_slug(first, slug)
    if monitor is not None:
        return monitor, action, False
    if query.get("create", [""])[-1] != "1" or not heartbeats.is_ping_key(first):
        raise _Refused(404, "not found")
    _kind(action)  # a bad exit status makes nothing
    made = await ping_create.provision(runtime, first, slug)
    if made is None:
        raise _Refused(404, "not found")
    return made[0], action, made[1]


def _kind(action: str) -> tuple[str, int | None]:
    if action == "":
        return "success", None
    if action in _ACTIONS:
        return action, None
    if action.isascii() and action.isdigit():
        if int(action) > 255:
            raise _Refused(400, "invalid url format")
        return "exit", int(action)
    raise _Refused(404, "not found")


def _rid(query: dict[str, list[str]]) -> str | None:
    given = query.get("rid")
    if given is None:
        return None
    if not _UUID.match(given[-1]):
        raise _Refused(400, "invalid uuid format")
    return given[-1].lower()


async def _read_body(receive: Receive, keep: int) -> bytes | None:
    data = bytearray()
    size = 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            return bytes(data)
        chunk = message.get("body", b"")
        size += len(chunk)
        if len(data) < keep:
            data.extend(chunk[: keep - len(data)])
        if size > max(HARD_LIMIT, keep):
            return None
        if not message.get("more_body"):
            return bytes(data)


async def _answer(
    send: Send, status: int, text: bytes, method: str, extra: dict[str, str] | None = None
) -> None:
    headers = [
        (b"content-type", b"text/plain; charset=utf-8"),
        (b"content-length", str(len(text)).encode()),
        (b"cache-control", b"no-store"),
        (b"access-control-allow-origin", b"*"),
    ]
    headers.extend((k.encode(), v.encode()) for k, v in (extra or {}).items())
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if method == "HEAD" else text})
