"""Signing in and out of the console: password (+ second factor), the first admin's setup
link, password-reset links, sign-out. Each outcome is audit-logged (accounts/users.py)."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.datastructures import FormData
from starlette.responses import RedirectResponse, Response

from uptally.accounts import links, sessions, totp, users
from uptally.accounts.roles import Role
from uptally.accounts.sessions import Opened, Signed
from uptally.accounts.users import AccountError, Outcome
from uptally.store import accounts as store
from uptally.store.accounts import UserRow
from uptally.web.auth import client_of
from uptally.web.console import render
from uptally.web.console.session import (
    Forbidden,
    clear_cookie,
    login_url,
    set_cookie,
    signed_of,
)
from uptally.web.deps import runtime_of
from uptally.web.ratelimit import FailureLimiter

router = APIRouter(prefix="/console", include_in_schema=False)


def _text(form: FormData, name: str, limit: int = 2048) -> str:
    value = form.get(name)
    return value[:limit] if isinstance(value, str) else ""


def safe_next(target: str) -> str:
    """Where to go after signing in: a console path of ours only (no open redirect)."""
    if target.startswith("/console/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/console/"


def _see_other(target: str) -> RedirectResponse:
    return RedirectResponse(target, status_code=303, headers=render.NO_STORE)


async def _login_page(
    request: Request,
    *,
    error: str = "",
    email: str = "",
    next_path: str = "/console/",
    status: int = 200,
    stage: str = "password",
) -> Response:
    signed = await signed_of(request) if stage == "code" else None
    passkeys = 0
    if signed is not None:
        async with runtime_of(request).db.connect() as conn:
            passkeys = await store.count_passkeys(conn, signed.user.id)
    return await render.page(
        request,
        signed,
        "login.html",
        status=status,
        error=error,
        email=email,
        next=safe_next(next_path),
        stage=stage,
        sso=sso_buttons(request),
        passkeys=passkeys,
        totp=signed is not None and signed.user.totp_enabled_at is not None,
    )


def sso_buttons(request: Request) -> list[dict[str, str]]:
    oidc = runtime_of(request).config.console.oidc
    if oidc is None:
        return []
    target = safe_next(request.query_params.get("next", "/console/"))
    query = "" if target == "/console/" else "?next=" + quote(target, safe="/")
    return [{"name": oidc.name, "href": "/console/sso/login" + query}]


@router.get("/login")
async def login_form(request: Request, next: str = "/console/") -> Response:
    signed = await signed_of(request)
    if signed is not None and signed.complete:
        return _see_other(safe_next(next))
    if signed is not None:  # password given, code owed
        return await _login_page(request, next_path=next, stage="code")
    return await _login_page(request, next_path=next)


@router.post("/login")
async def login(request: Request) -> Response:
    runtime = runtime_of(request)
    settings = runtime.config.console
    form = await request.form()
    email, password = _text(form, "email", 254), _text(form, "password")
    code, next_path = _text(form, "code", 64), _text(form, "next")
    limiter: FailureLimiter = request.app.state.auth_limiter
    client = client_of(request)
    wait = limiter.retry_after(client)
    if wait is not None:
        return await _login_page(
            request,
            error=f"Too many failed sign-ins from your address; try again in "
            f"{max(1, round(wait))} s.",
            email=email,
            next_path=next_path,
            status=429,
        )
    now = runtime.clock.now_ms()
    async with runtime.db.begin() as conn:
        result = await users.sign_in(conn, email, password, now, client, settings)
    if result.outcome is not Outcome.OK or result.user is None:
        limiter.fail(client)
        runtime.metrics.auth_failures.labels("console").inc()
        if result.outcome is Outcome.LOCKED and result.locked_until is not None:
            error = _locked_message(result.locked_until, now)
        else:
            error = "Wrong e-mail or password."
        return await _login_page(request, error=error, email=email, next_path=next_path, status=401)
    user, agent = result.user, request.headers.get("user-agent", "")
    stage, method, locked = sessions.FULL, "password", None
    async with runtime.db.begin() as conn:
        if await second_factor_owed(conn, user):
            how = (
                await totp.second_factor_ok(conn, user, code, runtime.keyring, now)
                if code
                else None
            )
            if how is not None:
                method = f"password+{how}"
            else:  # the code is asked for on its own page (a wrong one counts as a failure)
                stage = sessions.SECOND_FACTOR
                if code:
                    locked = await users.code_refused(conn, user, client, now, settings)
        if locked is None:
            opened = await sessions.open_session(
                conn, user, now, settings, ip=client, user_agent=agent, stage=stage
            )
            if stage == sessions.FULL:
                await users.signed_in(conn, user, method, client, now)
    if code and stage != sessions.FULL:
        limiter.fail(client)
    if locked is not None:
        error = _locked_message(locked, now)
        return await _login_page(request, error=error, email=email, next_path=next_path, status=401)
    target = safe_next(next_path)
    response = _see_other(target if stage == sessions.FULL else login_url(target))
    set_cookie(request, response, opened.token)
    return response


async def second_factor_owed(conn: AsyncConnection, user: UserRow) -> bool:
    """Whether a password sign-in must also give a code or a passkey."""
    return user.totp_enabled_at is not None or await store.count_passkeys(conn, user.id) > 0


def _locked_message(until: int, now: int) -> str:
    minutes = max(1, -(-(until - now) // 60_000))
    return (
        f"This account is locked after too many failed sign-ins; try again in "
        f"{minutes} min or ask an admin to reset the password."
    )


async def complete(
    conn: AsyncConnection, request: Request, signed: Signed, how: str, now: int
) -> Opened:
    """The second factor was given: the pending session becomes a full one (audit-logged)."""
    runtime = runtime_of(request)
    opened = await sessions.promote(conn, signed.session, now, runtime.config.console)
    await users.signed_in(conn, signed.user, f"password+{how}", client_of(request), now)
    return opened


@router.post("/login/code")
async def login_code(request: Request) -> Response:
    runtime = runtime_of(request)
    signed = await signed_of(request)
    form = await request.form()
    next_path = _text(form, "next")
    if signed is None or signed.complete:
        return _see_other(login_url(next_path))
    if not sessions.csrf_matches(signed.session, _text(form, "csrf", 128)):
        raise Forbidden("the form's security token is missing or stale; reload the page")
    limiter: FailureLimiter = request.app.state.auth_limiter
    client = client_of(request)
    if limiter.retry_after(client) is not None:
        return await _login_page(
            request,
            error="Too many failed attempts; wait a minute.",
            next_path=next_path,
            status=429,
            stage="code",
        )
    now = runtime.clock.now_ms()
    locked: int | None = signed.user.locked_until
    if locked is not None and locked <= now:
        locked = None
    async with runtime.db.begin() as conn:
        how = None
        if locked is None:
            how = await totp.second_factor_ok(
                conn, signed.user, _text(form, "code", 64), runtime.keyring, now
            )
            if how is None:
                locked = await users.code_refused(
                    conn, signed.user, client, now, runtime.config.console
                )
            else:
                opened = await complete(conn, request, signed, how, now)
        if locked is not None:
            await sessions.end(conn, signed.session, now)
    if locked is not None:  # the pending session has ended: back to the password form
        limiter.fail(client)
        request.state.signed = None
        response = await _login_page(
            request, error=_locked_message(locked, now), next_path=next_path, status=401
        )
        clear_cookie(request, response)
        return response
    if how is None:
        limiter.fail(client)
        request.state.signed = signed
        return await _login_page(
            request,
            error="That code is not right, or it has been used already.",
            next_path=next_path,
            status=401,
            stage="code",
        )
    response = _see_other(safe_next(next_path))
    set_cookie(request, response, opened.token)
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    runtime = runtime_of(request)
    signed = await signed_of(request)
    form = await request.form()
    if signed is not None:
        if not sessions.csrf_matches(signed.session, _text(form, "csrf", 128)):
            raise Forbidden("the form's security token is missing or stale; reload the page")
        async with runtime.db.begin() as conn:
            await sessions.end(conn, signed.session, runtime.clock.now_ms())
    response = _see_other("/console/login")
    clear_cookie(request, response)
    return response


def _link_page(
    request: Request, kind: str, token: str, live: bool, **values: object
) -> dict[str, Any]:
    settings = runtime_of(request).config.console
    first = kind == links.SETUP
    return {
        "heading": "Set up uptally" if first else "Choose a new password",
        "intro": "Create the first admin account." if first else "Choose a new password.",
        "button": "Create admin account" if first else "Set password",
        "expired_hint": "Restart `uptally serve` for a new setup link, or use "
        "`uptally users create`."
        if first
        else "Ask an admin for a new reset link.",
        "ask_email": first,
        "min_password": settings.min_password,
        "token": token,
        "live": live,
        "email": "",
        **values,
    }


async def _link_form(request: Request, kind: str, token: str) -> Response:
    runtime = runtime_of(request)
    async with runtime.db.connect() as conn:
        live = await links.is_live(conn, token, kind, runtime.clock.now_ms())
    return await render.page(
        request,
        None,
        "setup.html",
        status=200 if live else 410,
        **_link_page(request, kind, token, live),
    )


async def _use_link(request: Request, kind: str) -> Response:
    runtime = runtime_of(request)
    settings = runtime.config.console
    form = await request.form()
    token, password = _text(form, "token", 128), _text(form, "password")
    email = _text(form, "email", 254)
    now = runtime.clock.now_ms()
    client = client_of(request)
    try:
        async with runtime.db.begin() as conn:
            taken, user_id = await links.take(conn, token, kind, now)
            if not taken:
                raise AccountError("this link has been used or has expired")
            if kind == links.SETUP:
                if await store.count_users(conn):
                    raise AccountError("uptally has users already; sign in instead")
                user = await users.create(
                    conn, email, Role.ADMIN, password, "setup-link", now, settings
                )
            else:
                found = await store.user_by_id(conn, user_id or "")
                if found is None:
                    raise AccountError("the user of this link no longer exists")
                await users.set_password(conn, found, password, "reset-link", now, settings)
                user = found
            opened = await sessions.open_session(
                conn,
                user,
                now,
                settings,
                ip=client,
                user_agent=request.headers.get("user-agent", ""),
            )
            await users.signed_in(conn, user, kind + "-link", client, now)
    except AccountError as error:  # rolled back: the link still works
        return await render.page(
            request,
            None,
            "setup.html",
            status=422,
            **_link_page(request, kind, token, True, error=str(error), email=email),
        )
    response = _see_other("/console/")
    set_cookie(request, response, opened.token)
    return response


@router.get("/setup")
async def setup_form(request: Request, token: str = "") -> Response:
    return await _link_form(request, links.SETUP, token)


@router.post("/setup")
async def setup(request: Request) -> Response:
    return await _use_link(request, links.SETUP)


@router.get("/reset")
async def reset_form(request: Request, token: str = "") -> Response:
    return await _link_form(request, links.RESET, token)


@router.post("/reset")
async def reset(request: Request) -> Response:
    return await _use_link(request, links.RESET)
