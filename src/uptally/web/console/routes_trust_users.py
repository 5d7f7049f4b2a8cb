"""The console's users page (admin): create, change role, disable or enable, reset link, end
sessions. The accounts package is the service (as for `uptally users`); its refusals
(`AccountError`, e.g. the last admin's role) are shown inline and change nothing."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from uptally.accounts import links, roles, sessions, users
from uptally.accounts.roles import Role
from uptally.accounts.sessions import Signed
from uptally.accounts.users import AccountError
from uptally.web.console import render
from uptally.web.console.session import Admin
from uptally.web.console.trust_format import field as form_field
from uptally.web.console.trust_format import when
from uptally.web.deps import runtime_of

router = APIRouter(prefix="/console/trust/users", include_in_schema=False)


@dataclass(frozen=True, slots=True)
class UserView:
    email: str
    name: str
    role: str
    state: str
    second_factor: bool
    sso: bool
    last_sign_in: str
    myself: bool


@dataclass
class CreateForm:
    email: str = ""
    role: str = Role.VIEWER.value
    errors: dict[str, str] = field(default_factory=dict)


def reset_url(request: Request, token: str) -> str:
    """The one-time link, on the address the admin uses now (the console is served there)."""
    return f"{str(request.base_url).rstrip('/')}/console/reset?token={token}"


async def _page(
    request: Request,
    signed: Signed,
    *,
    form: CreateForm | None = None,
    status: int = 200,
    **values: Any,
) -> Response:
    runtime = runtime_of(request)
    now = runtime.clock.now_ms()
    async with runtime.db.connect() as conn:
        found = await users.listed(conn)
    shown = [
        UserView(
            u.email,
            u.name,
            u.role,
            users.state_of(u, now),
            u.totp_enabled_at is not None,
            u.sso_subject is not None,
            when(u.last_login_at) or "never",
            u.id == signed.user.id,
        )
        for u in found
    ]
    values.setdefault("done", "")
    values.setdefault("problem", "")
    values.setdefault("link", None)
    return await render.page(
        request,
        signed,
        "trust_users.html",
        nav="trust",
        sub="users",
        status=status,
        users=shown,
        roles=[r.value for r in roles.ORDER],
        form=form or CreateForm(),
        **values,
    )


@router.get("")
async def users_page(request: Request, signed: Admin) -> Response:
    return await _page(request, signed)


@router.post("")
async def create_user(request: Request, signed: Admin) -> Response:
    """A new user with a password, or without one and a one-time link to choose it (shown once)."""
    runtime = runtime_of(request)
    settings = runtime.config.console
    form = await request.form()
    given = CreateForm(form_field(form, "email", 254).strip(), form_field(form, "role", 16))
    password = form_field(form, "password", 1024)
    role = Role.VIEWER
    try:
        role = roles.parse(given.role)
    except ValueError as error:
        given.errors["role"] = str(error)
    email = ""
    try:
        email = users.check_email(given.email)
    except AccountError as error:
        given.errors["email"] = str(error)
    if email and password:
        try:
            await users.check_password(password, email, settings)
        except AccountError as error:
            given.errors["password"] = str(error)
    if given.errors:
        return await _page(request, signed, form=given, status=422)
    now = runtime.clock.now_ms()
    actor = users.principal(signed.user).actor
    try:
        async with runtime.db.begin() as conn:
            user = await users.create(conn, email, role, password or None, actor, now, settings)
            token = None if password else await links.issue(conn, links.RESET, user.id, now)
    except AccountError as error:  # the e-mail is taken
        given.errors["email"] = str(error)
        return await _page(request, signed, form=given, status=422)
    link = reset_url(request, token) if token else None
    return await _page(
        request,
        signed,
        done=f"User {user.email} ({user.role}) created.",
        link=link,
        link_for=user.email,
    )


async def _change(request: Request, signed: Admin, what: str) -> Response:
    runtime = runtime_of(request)
    form = await request.form()
    email = form_field(form, "email", 254)
    now = runtime.clock.now_ms()
    actor = users.principal(signed.user).actor
    link: str | None = None
    try:
        async with runtime.db.begin() as conn:
            if what == "role":
                user = await users.set_role(
                    conn, email, roles.parse(form_field(form, "role", 16)), actor, now
                )
                notice = f"{user.email} is now {user.role}."
            elif what in {"disable", "enable"}:
                user = await users.set_disabled(conn, email, what == "disable", actor, now)
                notice = f"{user.email} {what}d."
            elif what == "reset":
                user = await users.existing(conn, email)
                link = reset_url(request, await links.issue(conn, links.RESET, user.id, now))
                notice = f"A password-reset link for {user.email} is below."
            else:
                user = await users.existing(conn, email)
                keep = signed.session if user.id == signed.user.id else None
                ended = await sessions.end_all(conn, user, actor, now, keep)
                notice = f"Ended {ended} session{'s' * (ended != 1)} of {user.email}."
    except (AccountError, ValueError) as error:
        return await _page(request, signed, problem=f"Nothing changed: {error}", status=409)
    return await _page(request, signed, done=notice, link=link, link_for=email)


@router.post("/role")
async def change_role(request: Request, signed: Admin) -> Response:
    return await _change(request, signed, "role")


@router.post("/disable")
async def disable(request: Request, signed: Admin) -> Response:
    return await _change(request, signed, "disable")


@router.post("/enable")
async def enable(request: Request, signed: Admin) -> Response:
    return await _change(request, signed, "enable")


@router.post("/reset")
async def reset_link(request: Request, signed: Admin) -> Response:
    return await _change(request, signed, "reset")


@router.post("/sessions")
async def end_sessions(request: Request, signed: Admin) -> Response:
    return await _change(request, signed, "sessions")
