"""Security headers on every response and a size limit on API request bodies (413 JSON)."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

# The status page needs no script and only its own inline styles; nothing may frame it.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
# The /docs page starts Swagger UI (served from the package, see web/apidocs.py) with an
# inline script.
DOCS_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
_COMMON = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
    (b"x-frame-options", b"DENY"),
    (b"cross-origin-opener-policy", b"same-origin"),
]
HEADERS = [(b"content-security-policy", CSP.encode()), *_COMMON]
_DOCS_HEADERS = [(b"content-security-policy", DOCS_CSP.encode()), *_COMMON]
_NAMES = {name for name, _ in HEADERS}


def with_headers(send: Send, path: str) -> Send:
    """A `send` that adds the security headers to the response (unless already set)."""
    extra = _DOCS_HEADERS if path == "/docs" else HEADERS

    async def secured(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers") or ())
            present = {name.lower() for name, _ in headers} & _NAMES
            headers.extend(item for item in extra if item[0] not in present)
            message["headers"] = headers
        await send(message)

    return secured


async def limit_body(app: ASGIApp, scope: Scope, receive: Receive, send: Send, limit: int) -> None:
    """Refuse a request body over `limit` bytes with 413 before the application reads it."""
    length = None
    chunked = False
    for name, value in scope.get("headers") or ():
        if name == b"content-length":
            length = value
        elif name == b"transfer-encoding" and b"chunked" in value.lower():
            chunked = True
    if length is not None:
        if not length.isdigit():
            await _error(send, 400, "bad_request", "invalid Content-Length")
            return
        if int(length) > limit:
            await _too_large(send, limit)
            return
        await app(scope, receive, send)
        return
    if not chunked:
        await app(scope, receive, send)
        return
    # No length announced: read (at most `limit` bytes) before the application sees anything.
    body = bytearray()
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        body.extend(message.get("body", b""))
        if len(body) > limit:
            await _too_large(send, limit)
            return
        if not message.get("more_body"):
            break
    replayed = False

    async def replay() -> Message:
        nonlocal replayed
        if not replayed:
            replayed = True
            return {"type": "http.request", "body": bytes(body), "more_body": False}
        return await receive()

    await app(scope, replay, send)


async def _too_large(send: Send, limit: int) -> None:
    await _error(send, 413, "too_large", f"the request body is larger than {limit} bytes")


async def _error(send: Send, status: int, code: str, message: str) -> None:
    body = json.dumps({"error": {"code": code, "message": message}}).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
