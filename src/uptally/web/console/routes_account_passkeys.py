"""Passkeys in the console: add and remove them on the account page, and give one as the
second factor at sign-in. The browser side is static/passkeys.js (navigator.credentials)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import JSONResponse, Response

from uptally.accounts import passkeys, sessions, users
from uptally.accounts.passkeys import PasskeyError, RelyingParty
from uptally.web.auth import client_of
from uptally.web.console import render
from uptally.web.console.routes_account import see_other, text
from uptally.web.console.routes_auth import complete, safe_next
from uptally.web.console.session import Viewer, set_cookie, signed_of
from uptally.web.deps import base_url, runtime_of
from uptally.web.ratelimit import FailureLimiter

router = APIRouter(prefix="/console", include_in_schema=False)


def relying_party(request: Request) -> RelyingParty:
    return RelyingParty.of(base_url(request), runtime_of(request).config.site.title or "uptally")


def _json(value: dict[str, Any], status: int = 200) -> JSONResponse:
    return JSONResponse(value, status_code=status, headers=render.NO_STORE)


def _options(text_json: str) -> Response:
    return Response(text_json, media_type="application/json", headers=render.NO_STORE)


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = json.loads(await request.body())
    except (ValueError, UnicodeDecodeError):
        return {}
    return body if isinstance(body, dict) else {}


@router.post("/account/passkeys/options")
async def registration_options(request: Request, signed: Viewer) -> Response:
    if signed.user.password_hash is None:
        return _json({"error": "you sign in with single sign-on"}, 403)
    runtime = runtime_of(request)
    async with runtime.db.begin() as conn:
        options = await passkeys.registration_options(
            conn, signed.session, signed.user, relying_party(request)
        )
    return _options(options)


@router.post("/account/passkeys")
async def register(request: Request, signed: Viewer) -> Response:
    runtime = runtime_of(request)
    body = await _body(request)
    name = body.get("name") if isinstance(body.get("name"), str) else ""
    try:
        async with runtime.db.begin() as conn:
            await passkeys.register(
                conn,
                signed.session,
                signed.user,
                json.dumps(body.get("credential")),
                str(name),
                relying_party(request),
                users.principal(signed.user).actor,
                runtime.clock.now_ms(),
            )
    except PasskeyError as error:
        return _json({"error": str(error)}, 400)
    return _json({"next": "/console/account?done=passkey"})


@router.post("/account/passkeys/remove")
async def remove(request: Request, signed: Viewer) -> Response:
    runtime = runtime_of(request)
    credential_id = text(await request.form(), "id", 512)
    async with runtime.db.begin() as conn:
        actor = users.principal(signed.user).actor
        await passkeys.remove(conn, signed.user, credential_id, actor, runtime.clock.now_ms())
    return see_other("/console/account?done=passkey-removed")


async def _pending(request: Request) -> sessions.Signed | None:
    """The browser's session waiting for its second factor, if the request carries its CSRF
    token in X-CSRF-Token."""
    signed = await signed_of(request)
    if signed is None or signed.complete:
        return None
    if not sessions.csrf_matches(signed.session, request.headers.get("x-csrf-token")):
        return None
    return signed


@router.post("/login/passkey/options")
async def sign_in_options(request: Request) -> Response:
    signed = await _pending(request)
    if signed is None:
        return _json({"error": "sign in with your password first", "next": "/console/login"}, 403)
    async with runtime_of(request).db.begin() as conn:
        options = await passkeys.authentication_options(
            conn, signed.session, signed.user, relying_party(request)
        )
    if options is None:
        return _json({"error": "you have no passkey; use a code"}, 400)
    return _options(options)


@router.post("/login/passkey")
async def sign_in(request: Request) -> Response:
    """The passkey's answer: right, the session is promoted (a new cookie); wrong, it counts
    as a failed second factor (audit-logged, towards the lockout)."""
    runtime = runtime_of(request)
    signed = await _pending(request)
    if signed is None:
        return _json({"error": "sign in with your password first", "next": "/console/login"}, 403)
    limiter: FailureLimiter = request.app.state.auth_limiter
    client = client_of(request)
    if limiter.retry_after(client) is not None:
        return _json({"error": "too many failed attempts; wait a minute"}, 429)
    body = await _body(request)
    now = runtime.clock.now_ms()
    async with runtime.db.begin() as conn:
        ok = await passkeys.authenticate(
            conn,
            signed.session,
            signed.user,
            json.dumps(body.get("credential")),
            relying_party(request),
            now,
        )
        if ok:
            opened = await complete(conn, request, signed, "passkey", now)
        else:
            locked = await users.code_refused(
                conn, signed.user, client, now, runtime.config.console
            )
            if locked is not None:
                await sessions.end(conn, signed.session, now)
    if not ok:
        limiter.fail(client)
        return _json({"error": "the passkey was not accepted; try again or use a code"}, 401)
    response = _json({"next": safe_next(str(body.get("next", "")))})
    set_cookie(request, response, opened.token)
    return response


@router.post("/login/passkey/start")
async def passwordless_options(request: Request) -> Response:
    """Signing in with a passkey alone: the options (no session yet)."""
    runtime = runtime_of(request)
    limiter: FailureLimiter = request.app.state.auth_limiter
    if limiter.retry_after(client_of(request)) is not None:
        return _json({"error": "too many failed attempts; wait a minute"}, 429)
    async with runtime.db.begin() as conn:
        options = await passkeys.sign_in_options(
            conn, relying_party(request), runtime.clock.now_ms()
        )
    return _options(options)


@router.post("/login/passkey/finish")
async def passwordless(request: Request) -> Response:
    """The passkey's answer: its user signed in (a full session), unless disabled or locked."""
    runtime = runtime_of(request)
    limiter: FailureLimiter = request.app.state.auth_limiter
    client = client_of(request)
    if limiter.retry_after(client) is not None:
        return _json({"error": "too many failed attempts; wait a minute"}, 429)
    body = await _body(request)
    now = runtime.clock.now_ms()
    async with runtime.db.begin() as conn:
        user = await passkeys.passwordless(
            conn, json.dumps(body.get("credential")), relying_party(request), now
        )
        usable = user is not None and user.disabled_at is None
        if user is not None and usable and (user.locked_until or 0) <= now:
            opened = await sessions.open_session(
                conn,
                user,
                now,
                runtime.config.console,
                ip=client,
                user_agent=request.headers.get("user-agent", ""),
            )
            await users.signed_in(conn, user, "passkey", client, now)
        else:
            user = None
    if user is None:
        limiter.fail(client)
        runtime.metrics.auth_failures.labels("console").inc()
        return _json({"error": "this passkey does not sign in here; use your password"}, 401)
    response = _json({"next": safe_next(str(body.get("next", "")))})
    set_cookie(request, response, opened.token)
    return response
