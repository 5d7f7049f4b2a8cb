"""Authentication and scopes for the admin API: scoped tokens and the bootstrap token.

The admin API guard (`require_admin`) asks for `read` on GET/HEAD and `write` on everything
else; token management and other administration ask for `admin` (`require_scope`).
`UPTALLY_ADMIN_TOKEN` stays a bootstrap token with the admin scope. Failed attempts are logged,
counted and, past `security.auth_failures` per `security.auth_window`, refused with 429 per
client address.

Private status pages (`require_page`) also take HTTP Basic with the token as the password, so
that a browser can open them without JavaScript: their 401 carries a Basic challenge.
"""

from __future__ import annotations

import base64
import hmac
import logging
from collections.abc import Awaitable, Callable

from fastapi import Request

from uptally import tokens
from uptally.accounts import sessions, totp, users
from uptally.tokens import BOOTSTRAP, Principal
from uptally.web.console.session import COOKIE, signed_of
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


def _presented(header: str, basic: bool) -> str | None:
    """The token in an Authorization header: a bearer token, or (if `basic`) the password of
    HTTP Basic credentials, whatever the user name. None when there is none; "" for Basic
    credentials that cannot be read (a failed attempt like a malformed token)."""
    scheme, _, value = header.partition(" ")
    value = value.strip()
    if not value:
        return None
    if scheme.lower() == "bearer":
        return value
    if basic and scheme.lower() == "basic":
        try:
            decoded = base64.b64decode(value, validate=True).decode("utf-8")
        except ValueError:  # not base64, or not UTF-8
            return ""
        _, colon, password = decoded.partition(":")
        return password if colon else ""
    return None


def basic_challenge(realm: str) -> dict[str, str]:
    """A `WWW-Authenticate` header asking a browser for credentials (printable ASCII only)."""
    safe = "".join(ch if " " <= ch <= "~" else "?" for ch in realm)
    quoted = safe.replace("\\", "\\\\").replace('"', '\\"')  # an HTTP quoted-string
    return {"WWW-Authenticate": f'Basic realm="{quoted}"'}


def refuse_if_limited(limiter: FailureLimiter, client: str, what: str) -> None:
    """429 with `Retry-After` while `client` is over its limit of failed attempts."""
    wait = limiter.retry_after(client)
    if wait is not None:
        seconds = max(1, round(wait))
        raise ApiError(
            429, f"{what}; try again in {seconds} s", headers={"Retry-After": str(seconds)}
        )


async def authenticate(request: Request, basic_realm: str | None = None) -> Principal:
    """The principal of a request's token, or ApiError 401/429. With `basic_realm`, HTTP Basic
    (the token as password) is accepted too and a 401 asks for it in that realm."""
    runtime = runtime_of(request)
    limiter: FailureLimiter = request.app.state.auth_limiter
    client = client_of(request)
    refuse_if_limited(limiter, client, "too many failed authentication attempts")
    challenge = _CHALLENGE if basic_realm is None else basic_challenge(basic_realm)
    presented = _presented(request.headers.get("authorization", ""), basic_realm is not None)
    if presented is None and request.cookies.get(COOKIE):
        # A signed-in console user calls the API from the console's pages (fetch with the
        # session cookie); a change must carry the session's CSRF token in X-CSRF-Token.
        signed = await signed_of(request)
        if (
            signed is not None
            and signed.complete
            and not totp.enrolment_owed(signed.user, runtime.config.console)
        ):
            if request.method not in _SAFE and not sessions.csrf_matches(
                signed.session, request.headers.get("x-csrf-token")
            ):
                raise ApiError(403, "a change from the console needs its X-CSRF-Token header")
            request.state.principal = users.principal(signed.user)
            return request.state.principal  # type: ignore[no-any-return]
    if presented is None:
        missing = (
            "missing bearer token (Authorization: Bearer <token>)"
            if basic_realm is None
            else "missing credentials (Authorization: Bearer <token>, or Basic with the token "
            "as the password)"
        )
        raise ApiError(401, missing, headers=challenge)
    principal, reason = await token_principal(request, presented)
    if principal is None:
        raise ApiError(401, _MESSAGES.get(reason, "invalid token"), headers=challenge)
    return principal


async def token_principal(request: Request, presented: str) -> tuple[Principal | None, str]:
    """The principal of a presented token (set on the request), or None and why not (the
    failure logged and counted against the client's limit)."""
    runtime = runtime_of(request)
    client = client_of(request)
    bootstrap: str | None = request.app.state.admin_token
    if bootstrap and hmac.compare_digest(presented.encode(), bootstrap.encode()):
        principal = BOOTSTRAP
    else:
        now = runtime.clock.now_ms()
        async with runtime.db.connect() as conn:
            verdict = await tokens.authenticate(conn, presented, now)
        if verdict.principal is None:
            request.app.state.auth_limiter.fail(client)
            runtime.metrics.auth_failures.labels(verdict.reason).inc()
            log.warning("refused an API token from %s: %s", client, verdict.reason)
            return None, verdict.reason
        principal = verdict.principal
        if verdict.needs_touch:  # last use is written at most once a minute per token
            async with runtime.db.begin() as conn:
                await tokens.touch(conn, principal.id, now, client)
    request.state.principal = principal
    return principal, "ok"


def _check(principal: Principal, scope: str) -> Principal:
    if not principal.allows(scope):
        raise ApiError(403, f"this token lacks the {scope} scope")
    return principal


async def require_admin(request: Request) -> Principal:
    """The admin API guard: `read` for GET/HEAD, `write` for changes."""
    principal = await authenticate(request)
    return _check(principal, "read" if request.method in _SAFE else "write")


async def require_responder(request: Request) -> Principal:
    """The guard of incidents and maintenance: `read` for GET/HEAD, `respond` for changes."""
    principal = await authenticate(request)
    return _check(principal, "read" if request.method in _SAFE else "respond")


def require_scope(scope: str) -> Callable[[Request], Awaitable[Principal]]:
    async def dependency(request: Request) -> Principal:
        return _check(await authenticate(request), scope)

    return dependency


def require_page(
    page: str, realm: Callable[[], str], headers: dict[str, str]
) -> Callable[[Request], Awaitable[Principal]]:
    """The guard of a private status page: scope `page:<page>` (or read, respond, write, admin), by
    bearer token or Basic credentials; `headers` go on its refusals too (no caching)."""

    async def dependency(request: Request) -> Principal:
        try:
            return _check(await authenticate(request, basic_realm=realm()), f"page:{page}")
        except ApiError as error:
            error.headers = {**(error.headers or {}), **headers}
            raise

    return dependency
