"""Setting up the authenticator app (TOTP) at /console/account/totp: a new secret as a QR code
(inline SVG, `segno`) and as text, confirmed with a code and the password, then the recovery
codes shown once; and turning it off with a current code."""

from __future__ import annotations

import io

import segno
from fastapi import APIRouter, Request
from starlette.responses import Response

from uptally.accounts import totp, users
from uptally.accounts.sessions import Signed
from uptally.store import accounts as store
from uptally.web.console import render
from uptally.web.console.routes_account import (
    account_page,
    password_problem,
    see_other,
    text,
    when,
)
from uptally.web.console.session import Enrolling, Viewer
from uptally.web.deps import runtime_of

router = APIRouter(prefix="/console/account/totp", include_in_schema=False)


def qr_svg(uri: str) -> str:
    """The URI as a QR code: dark on light in either colour scheme, so cameras read it."""
    out = io.BytesIO()
    segno.make(uri, error="m").save(
        out,
        kind="svg",
        xmldecl=False,
        svgns=True,
        scale=5,
        border=3,
        dark="#000",
        light="#fff",
        omitsize=True,
        svgclass="qr",
        lineclass=None,
        nl=False,
    )
    return out.getvalue().decode().replace("<svg ", '<svg aria-hidden="true" focusable="false" ', 1)


async def enrol_page(
    request: Request,
    signed: Signed,
    secret: str,
    *,
    status: int = 200,
    errors: dict[str, str] | None = None,
) -> Response:
    runtime = runtime_of(request)
    user = signed.user
    uri = totp.provisioning_uri(secret, user.email, runtime.config.site.title or "uptally")
    return await render.page(
        request,
        signed,
        "account_totp.html",
        nav="account",
        status=status,
        title="Set up an authenticator app",
        secret=secret,
        grouped=" ".join(secret[i : i + 4] for i in range(0, len(secret), 4)),
        uri=uri,
        qr=qr_svg(uri),
        owed=totp.enrolment_owed(user, runtime.config.console),
        enabled_since=when(request, user.totp_enabled_at) if user.totp_enabled_at else "",
        has_password=user.password_hash is not None,
        errors=errors or {},
    )


@router.get("")
async def enrol_form(request: Request, signed: Enrolling) -> Response:
    return await enrol_page(request, signed, totp.new_secret())


@router.post("")
async def enrol(request: Request, signed: Enrolling) -> Response:
    """Turn TOTP on: the page's secret (kept in the form: it was shown to this user anyway), a
    code it makes now, and the password (a borrowed session cannot lock the owner out)."""
    runtime = runtime_of(request)
    form = await request.form()
    secret = text(form, "secret", 64)
    if not totp.is_secret(secret):
        secret = totp.new_secret()
    errors: dict[str, str] = {}
    now = runtime.clock.now_ms()
    step = totp.matching_step(secret, text(form, "code", 64), now)
    if signed.user.totp_enabled_at is not None:
        errors["code"] = "an authenticator app is set up already; turn it off first"
    elif problem := await password_problem(request, signed, text(form, "password")):
        errors["password"] = problem
    if step is None and not errors:
        errors["code"] = "that code does not match; check the phone's clock and try the next one"
    if errors or step is None:
        return await enrol_page(request, signed, secret, status=422, errors=errors)
    async with runtime.db.begin() as conn:
        actor = users.principal(signed.user).actor
        codes = await totp.enable(conn, signed.user, secret, step, runtime.keyring, actor, now)
    return await render.page(
        request,
        signed,
        "account_codes.html",
        nav="account",
        title="Recovery codes",
        codes=codes,
        enabled=True,
    )


@router.post("/disable")
async def disable(request: Request, signed: Viewer) -> Response:
    runtime = runtime_of(request)
    settings = runtime.config.console
    code = text(await request.form(), "code", 64)
    now = runtime.clock.now_ms()
    if signed.user.totp_enabled_at is None:
        return see_other("/console/account")
    if settings.require_totp and signed.user.password_hash is not None:
        error = "your administrator requires an authenticator app for every password user"
        return await account_page(request, signed, status=422, errors={"totp_code": error})
    async with runtime.db.begin() as conn:
        how = await totp.second_factor_ok(conn, signed.user, code, runtime.keyring, now)
        if how is not None:
            passkeys = await store.count_passkeys(conn, signed.user.id)
            actor = users.principal(signed.user).actor
            await totp.disable(conn, signed.user, actor, now, keep_codes=passkeys > 0)
    if how is None:
        error = "that code is not right, or it has been used already"
        return await account_page(request, signed, status=422, errors={"totp_code": error})
    return see_other("/console/account?done=totp-off")
