"""Authentication and scopes for the admin API: scoped tokens and the bootstrap token.

The admin API guard (`require_admin`) asks for `read` on GET/HEAD and `write` on everything
else; token management and other administration ask for `admin` (`require_scope`).
`UPTALLY_ADMIN_TOKEN` stays a bootstrap token with the admin scope. Failed attempts are logged,
counted and, past `security.auth_failures` per `security.auth_window`, refused with 429 per
client address.
"""

from __future__ import annotations

import hmac
import logging
from collections.abc import Awaitable, Callable

from fastapi import Request

from uptally import tokens
from uptally.tokens import BOOTSTRAP, Principal
from uptally.web.deps import runtime_of
from uptally.web.errors import ApiError
from uptally.web.ratelimit import FailureLimiter

log = logging.getLogger(__name__)

_CHALLENGE = {"WWW-Authenticate": "Bearer"}
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})
_MESSAGES = {"revoked": "token revoked", "expired": "token expired"}


def client_of(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def principal_of(request: Request) -> Principal:
    """Who made this (authenticated) request."""
    principal: Principal = request.state.principal
    return principal


async def authenticate(request: Request) -> Principal:
    runtime = runtime_of(request)
    limiter: FailureLimiter = request.app.state.auth_limiter
    client = client_of(request)
    wait = limiter.retry_after(client)
    if wait is not None:
        seconds = max(1, round(wait))
        raise ApiError(
            429,
            f"too many failed authentication attempts; try again in {seconds} s",
            headers={"Retry-After": str(seconds)},
        )
    scheme, _, presented = request.headers.get("authorization", "").partition(" ")
    presented = presented.strip()
    if scheme.lower() != "bearer" or not presented:
        raise ApiError(
            401, "missing bearer token (Authorization: Bearer <token>)", headers=_CHALLENGE
        )
    bootstrap: str | None = request.app.state.admin_token
    if bootstrap and hmac.compare_digest(presented.encode(), bootstrap.encode()):
        principal = BOOTSTRAP
    else:
        now = runtime.clock.now_ms()
        async with runtime.db.connect() as conn:
            verdict = await tokens.authenticate(conn, presented, now)
        if verdict.principal is None:
            limiter.fail(client)
            runtime.metrics.auth_failures.labels(verdict.reason).inc()
            log.warning("refused an API token from %s: %s", client, verdict.reason)
            raise ApiError(401, _MESSAGES.get(verdict.reason, "invalid token"), headers=_CHALLENGE)
        principal = verdict.principal
        if verdict.needs_touch:  # last use is written at most once a minute per token
            async with runtime.db.begin() as conn:
                await tokens.touch(conn, principal.id, now, client)
    request.state.principal = principal
    return principal


def _check(principal: Principal, scope: str) -> Principal:
    if not principal.allows(scope):
        raise ApiError(403, f"this token lacks the {scope} scope")
    return principal


async def require_admin(request: Request) -> Principal:
    """The admin API guard: `read` for GET/HEAD, `write` for changes."""
    principal = await authenticate(request)
    return _check(principal, "read" if request.method in _SAFE else "write")


def require_scope(scope: str) -> Callable[[Request], Awaitable[Principal]]:
    async def dependency(request: Request) -> Principal:
        return _check(await authenticate(request), scope)

    return dependency
