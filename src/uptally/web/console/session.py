"""Who is signed in to the console: the session cookie, role guards and the CSRF check.

Signed out, a console page redirects to the sign-in form (`SignInRequired`); a role too low
answers 403 (`Forbidden`); every state-changing request must carry the session's CSRF token,
as the form field `csrf` or the header `X-CSRF-Token`, or it answers 403.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, Request
from starlette.responses import Response

from uptally.accounts import roles, sessions, totp, users
from uptally.accounts.roles import Role
from uptally.accounts.sessions import Signed
from uptally.tokens import Principal
from uptally.web.deps import runtime_of

COOKIE = "uptally_session"
_SAFE = frozenset({"GET", "HEAD", "OPTIONS"})


class SignInRequired(Exception):
    def __init__(self, next_path: str) -> None:
        self.next_path = next_path

    @property
    def location(self) -> str:
        return login_url(self.next_path)


ENROL_PATH = "/console/account/totp"


class EnrolmentRequired(SignInRequired):
    """`console.require_totp`: signed in, but only the TOTP enrolment page until it is set up."""

    @property
    def location(self) -> str:
        return ENROL_PATH


class Forbidden(Exception):
    def __init__(self, message: str) -> None:
        self.message = message


def is_https(request: Request) -> bool:
    """Whether the browser talks https to us (directly, or through a trusted proxy)."""
    return request.url.scheme == "https"


def set_cookie(request: Request, response: Response, token: str) -> None:
    settings = runtime_of(request).config.console
    response.set_cookie(
        COOKIE,
        token,
        max_age=settings.session_absolute // 1000,
        path="/",
        httponly=True,
        samesite="lax",
        secure=is_https(request),
    )


def clear_cookie(request: Request, response: Response) -> None:
    response.delete_cookie(
        COOKIE, path="/", httponly=True, samesite="lax", secure=is_https(request)
    )


async def signed_of(request: Request) -> Signed | None:
    """The request's live session (pending second factor included), resolved once."""
    if hasattr(request.state, "signed"):
        cached: Signed | None = request.state.signed
        return cached
    runtime = runtime_of(request)
    token = request.cookies.get(COOKIE, "")
    signed = None
    if token:
        now = runtime.clock.now_ms()
        async with runtime.db.connect() as conn:
            signed, stale = await sessions.resolve(conn, token, now, runtime.config.console)
        if signed is not None and stale:
            async with runtime.db.begin() as conn:
                await sessions.touch(conn, signed.session, now)
    request.state.signed = signed
    return signed


async def check_csrf(request: Request, signed: Signed) -> None:
    """403 unless an unsafe request carries the session's CSRF token (header or form field)."""
    if request.method in _SAFE:
        return
    presented = request.headers.get("x-csrf-token")
    if presented is None and request.headers.get("content-type", "").startswith(
        ("application/x-www-form-urlencoded", "multipart/form-data")
    ):
        form = await request.form()  # Starlette keeps it: the handler reads the same form
        value = form.get("csrf")
        presented = value if isinstance(value, str) else None
    if not sessions.csrf_matches(signed.session, presented):
        raise Forbidden(
            "the form's security token is missing or stale; reload the page and try again"
        )


def require(
    role: Role = Role.VIEWER, *, enrolling: bool = False
) -> Callable[[Request], Awaitable[Signed]]:
    """A console route's guard: signed in (every factor given), at least `role`, and for unsafe
    methods the CSRF token. Sets `request.state.principal` for the audit log. While
    `console.require_totp` owes an enrolment, only routes guarded with `enrolling=True` (the
    enrolment page) answer; the others redirect there."""

    async def dependency(request: Request) -> Signed:
        signed = await signed_of(request)
        if signed is None or not signed.complete:
            target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
            raise SignInRequired(target if request.method in _SAFE else "/console/")
        if not enrolling and totp.enrolment_owed(signed.user, runtime_of(request).config.console):
            raise EnrolmentRequired("/console/")
        if not roles.covers(users.role_of(signed.user), role):
            raise Forbidden(f"this needs the {role.value} role; you are {signed.user.role}")
        await check_csrf(request, signed)
        request.state.principal = users.principal(signed.user)
        return signed

    return dependency


def principal(signed: Signed) -> Principal:
    return users.principal(signed.user)


def login_url(next_path: str) -> str:
    if not next_path.startswith("/console/") or next_path.startswith("//"):
        next_path = "/console/"
    return f"/console/login?next={quote(next_path, safe='/')}"


# Route parameters: `signed: Viewer` (or Responder, Editor, Admin) guards a console route.
Viewer = Annotated[Signed, Depends(require(Role.VIEWER))]
Responder = Annotated[Signed, Depends(require(Role.RESPONDER))]
Editor = Annotated[Signed, Depends(require(Role.EDITOR))]
Admin = Annotated[Signed, Depends(require(Role.ADMIN))]
# The TOTP enrolment page: reachable while `console.require_totp` still owes the enrolment.
Enrolling = Annotated[Signed, Depends(require(Role.VIEWER, enrolling=True))]
