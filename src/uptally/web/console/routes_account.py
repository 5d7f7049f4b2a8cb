"""Your account at /console/account: profile, password, second factors (summary) and the
signed-in browsers, with "sign out everywhere else" and "sign out everywhere"."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from fastapi import APIRouter, Request
from starlette.datastructures import FormData
from starlette.responses import RedirectResponse, Response

from uptally import offloop
from uptally.accounts import passwords, sessions, totp, users
from uptally.accounts.sessions import Signed
from uptally.accounts.users import AccountError
from uptally.clock import Millis
from uptally.store import accounts as store
from uptally.web.auth import client_of
from uptally.web.console import render
from uptally.web.console.session import Viewer, clear_cookie
from uptally.web.deps import runtime_of
from uptally.web.ratelimit import FailureLimiter

router = APIRouter(prefix="/console/account", include_in_schema=False)

DONE = {  # ?done=… after a change: what the page says happened
    "name": "Your name has been saved.",
    "password": "Your password has been changed; your other sessions have ended.",
    "others": "You have been signed out everywhere else.",
    "one": "That browser has been signed out.",
    "totp-off": "Two-factor authentication with an authenticator app is off.",
    "passkey": "The passkey has been added.",
    "passkey-removed": "The passkey has been removed.",
}


def text(form: FormData, name: str, limit: int = 2048) -> str:
    value = form.get(name)
    return value[:limit] if isinstance(value, str) else ""


def see_other(target: str) -> RedirectResponse:
    return RedirectResponse(target, status_code=303, headers=render.NO_STORE)


def when(request: Request, at: Millis | None) -> str:
    """A time in the site's timezone, as people read it ("3 Dec 2026, 14:05")."""
    if at is None:
        return "never"
    zone = ZoneInfo(runtime_of(request).config.site.timezone)
    moment = datetime.fromtimestamp(at / 1000, UTC).astimezone(zone)
    return f"{moment.day} {moment:%b %Y, %H:%M}"


def iso(at: Millis) -> str:
    return datetime.fromtimestamp(at / 1000, UTC).isoformat(timespec="seconds")


def browser_of(agent: str) -> str:
    """A short name for a user agent ("Chrome on Linux"); the full string goes in a title."""
    browsers = [("Edg/", "Edge"), ("Firefox/", "Firefox"), ("Chrome/", "Chrome")]
    browsers += [("Safari/", "Safari"), ("curl/", "curl")]
    systems = [("Windows", "Windows"), ("Android", "Android"), ("iPhone", "iOS")]
    systems += [("iPad", "iPadOS"), ("Mac OS X", "macOS"), ("Linux", "Linux")]
    browser = next((name for token, name in browsers if token in agent), "")
    system = next((name for token, name in systems if token in agent), "")
    if browser and system:
        return f"{browser} on {system}"
    return browser or system or (agent[:40] if agent else "unknown browser")


@dataclass(frozen=True, slots=True)
class SessionView:
    id: str  # the stored id (a SHA-256 of the cookie's token: it opens nothing)
    created: str
    created_iso: str
    last_seen: str
    last_seen_iso: str
    ip: str
    browser: str
    user_agent: str
    current: bool


async def live_sessions(request: Request, signed: Signed) -> list[SessionView]:
    """The user's signed-in browsers (every factor given, not idle past the timeout)."""
    runtime = runtime_of(request)
    now = runtime.clock.now_ms()
    idle = runtime.config.console.session_idle
    async with runtime.db.connect() as conn:
        rows = await store.sessions_of(conn, signed.user.id, now)
    return [
        SessionView(
            id=row.id,
            created=when(request, row.created_at),
            created_iso=iso(row.created_at),
            last_seen=when(request, row.last_seen_at),
            last_seen_iso=iso(row.last_seen_at),
            ip=row.ip,
            browser=browser_of(row.user_agent),
            user_agent=row.user_agent,
            current=row.id == signed.session.id,
        )
        for row in rows
        if row.stage == sessions.FULL and now - row.last_seen_at < idle
    ]


async def account_page(
    request: Request,
    signed: Signed,
    *,
    status: int = 200,
    errors: dict[str, str] | None = None,
    notice: str = "",
) -> Response:
    runtime = runtime_of(request)
    async with runtime.db.connect() as conn:
        user = await store.user_by_id(conn, signed.user.id) or signed.user
        keys = await store.passkeys_of(conn, user.id)
        codes_left = await store.unused_recovery_codes(conn, user.id)
    return await render.page(
        request,
        signed,
        "account.html",
        nav="account",
        status=status,
        title="Your account",
        account=user,
        has_password=user.password_hash is not None,
        totp_on=user.totp_enabled_at is not None,
        totp_since=when(request, user.totp_enabled_at),
        totp_required=runtime.config.console.require_totp,
        passkeys=[
            {
                "id": k.id,
                "name": k.name,
                "added": when(request, k.created_at),
                "used": when(request, k.last_used_at),
            }
            for k in keys
        ],
        codes_left=codes_left,
        sessions=await live_sessions(request, signed),
        password_changed=when(request, user.password_changed_at),
        last_login=when(request, user.last_login_at),
        min_password=runtime.config.console.min_password,
        errors=errors or {},
        notice=notice,
    )


@router.get("")
async def account(request: Request, signed: Viewer, done: str = "") -> Response:
    return await account_page(request, signed, notice=DONE.get(done, ""))


@router.post("/profile")
async def profile(request: Request, signed: Viewer) -> Response:
    runtime = runtime_of(request)
    name = text(await request.form(), "name", 256)
    try:
        async with runtime.db.begin() as conn:
            actor = users.principal(signed.user).actor
            await users.set_name(conn, signed.user, name, actor, runtime.clock.now_ms())
    except AccountError as error:
        return await account_page(request, signed, status=422, errors={"name": str(error)})
    return see_other("/console/account?done=name")


async def password_problem(request: Request, signed: Signed, password: str) -> str | None:
    """Why the signed-in user's current password was not confirmed (None: it was). A wrong one
    counts as a failed attempt from the client, so a borrowed session cannot guess at it."""
    if signed.user.password_hash is None:
        return "you sign in with single sign-on; there is no password"
    limiter: FailureLimiter = request.app.state.auth_limiter
    client = client_of(request)
    if limiter.retry_after(client) is not None:
        return "too many failed attempts from your address; wait a minute"
    if await offloop.run(passwords.verify, signed.user.password_hash, password):
        return None
    limiter.fail(client)
    return "this is not your current password"


@router.post("/password")
async def change_password(request: Request, signed: Viewer) -> Response:
    runtime = runtime_of(request)
    settings = runtime.config.console
    form = await request.form()
    current, new = text(form, "current"), text(form, "new")
    errors: dict[str, str] = {}
    problem = await password_problem(request, signed, current)
    if problem:
        errors["current"] = problem
    elif new != text(form, "confirm"):
        errors["confirm"] = "the two new passwords differ"
    else:
        found = passwords.problems(new, signed.user.email, settings.min_password)
        if found:
            errors["new"] = "; ".join(found)
    if errors:
        return await account_page(request, signed, status=422, errors=errors)
    async with runtime.db.begin() as conn:
        await users.set_password(
            conn,
            signed.user,
            new,
            users.principal(signed.user).actor,
            runtime.clock.now_ms(),
            settings,
            keep_session=signed.session.id,
        )
    return see_other("/console/account?done=password")


@router.post("/sessions/others")
async def end_others(request: Request, signed: Viewer) -> Response:
    runtime = runtime_of(request)
    async with runtime.db.begin() as conn:
        await sessions.end_all(
            conn,
            signed.user,
            users.principal(signed.user).actor,
            runtime.clock.now_ms(),
            keep=signed.session,
        )
    return see_other("/console/account?done=others")


@router.post("/sessions/end")
async def end_one(request: Request, signed: Viewer) -> Response:
    runtime = runtime_of(request)
    session_id = text(await request.form(), "session", 64)
    if session_id == signed.session.id:
        return see_other("/console/account")  # this browser signs out with "Sign out"
    async with runtime.db.begin() as conn:
        actor = users.principal(signed.user).actor
        await sessions.end_one(conn, signed.user, session_id, actor, runtime.clock.now_ms())
    return see_other("/console/account?done=one")


@router.post("/sessions/all")
async def end_everywhere(request: Request, signed: Viewer) -> Response:
    runtime = runtime_of(request)
    async with runtime.db.begin() as conn:
        await sessions.end_all(
            conn, signed.user, users.principal(signed.user).actor, runtime.clock.now_ms()
        )
    response = see_other("/console/login")
    clear_cookie(request, response)
    return response


@router.post("/recovery-codes")
async def new_recovery_codes(request: Request, signed: Viewer) -> Response:
    """Replace the recovery codes (the current password is asked: they stand in for a factor)."""
    runtime = runtime_of(request)
    password = text(await request.form(), "password")
    problem = await password_problem(request, signed, password)
    if problem:
        return await account_page(request, signed, status=422, errors={"codes_password": problem})
    async with runtime.db.begin() as conn:
        factors = signed.user.totp_enabled_at is not None
        factors = factors or await store.count_passkeys(conn, signed.user.id) > 0
        if not factors:
            codes: list[str] = []
        else:
            actor = users.principal(signed.user).actor
            codes = await totp.renew_recovery_codes(
                conn, signed.user, actor, runtime.clock.now_ms()
            )
    if not codes:
        errors = {"codes_password": "set up an authenticator app or a passkey first"}
        return await account_page(request, signed, status=422, errors=errors)
    return await render.page(
        request, signed, "account_codes.html", nav="account", title="Recovery codes", codes=codes
    )
