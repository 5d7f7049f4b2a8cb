"""The console's tokens and secrets pages (admin), on the services the admin API uses
(`uptally.tokens`, `uptally.vault`): a new token is shown once, secrets only by name."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from uptally import tokens, vault
from uptally.accounts import users
from uptally.accounts.sessions import Signed
from uptally.durations import parse_duration_ms
from uptally.web.console import render
from uptally.web.console.session import Admin
from uptally.web.console.trust_format import ago, when
from uptally.web.console.trust_format import field as form_field
from uptally.web.deps import runtime_of

router = APIRouter(prefix="/console/trust", include_in_schema=False)

LEVELS = tokens.LEVELS


@dataclass(frozen=True, slots=True)
class TokenView:
    id: str
    name: str
    scopes: str
    created: str
    created_by: str
    expires: str
    last_used: str
    state: str


@dataclass
class TokenForm:
    name: str = ""
    scopes: list[str] = field(default_factory=lambda: ["read"])
    pages: str = ""
    expires: str = "90d"
    errors: dict[str, str] = field(default_factory=dict)


def _state(revoked_at: int | None, expires_at: int | None, now: int) -> str:
    if revoked_at is not None:
        return "revoked"
    if expires_at is not None and expires_at <= now:
        return "expired"
    return "active"


async def _tokens_page(
    request: Request,
    signed: Signed,
    form: TokenForm | None = None,
    status: int = 200,
    **values: Any,
) -> Response:
    runtime = runtime_of(request)
    now = runtime.clock.now_ms()
    async with runtime.db.connect() as conn:
        rows = await tokens.listed(conn)
    shown = [
        TokenView(
            row.id,
            row.name,
            " ".join(row.scopes),
            when(row.created_at),
            row.created_by,
            when(row.expires_at) or "never",
            ago(row.last_used_at, now),
            _state(row.revoked_at, row.expires_at, now),
        )
        for row in sorted(rows, key=lambda r: (r.revoked_at is not None, -r.created_at))
    ]
    values.setdefault("done", "")
    values.setdefault("problem", "")
    values.setdefault("issued", None)
    return await render.page(
        request,
        signed,
        "trust_tokens.html",
        nav="trust",
        sub="tokens",
        status=status,
        tokens=shown,
        levels=LEVELS,
        form=form or TokenForm(),
        **values,
    )


@router.get("/tokens")
async def tokens_page(request: Request, signed: Admin) -> Response:
    return await _tokens_page(request, signed)


@router.post("/tokens")
async def create_token(request: Request, signed: Admin) -> Response:
    runtime = runtime_of(request)
    form = await request.form()
    given = TokenForm(
        form_field(form, "name", 200).strip(),
        [s for s in form.getlist("scope") if isinstance(s, str) and s in LEVELS],
        form_field(form, "pages", 1000).strip(),
        form_field(form, "expires", 40).strip(),
    )
    now = runtime.clock.now_ms()
    scopes = given.scopes + [f"page:{page}" for page in given.pages.replace(",", " ").split()]
    expires_at = None
    if not given.name or len(given.name) > 128:
        given.errors["name"] = "Give the token a name of 1 to 128 characters (what it is for)."
    try:
        tokens.check_scopes(scopes)
    except ValueError as error:
        given.errors["scopes"] = str(error)
    if given.expires:
        try:
            expires_at = now + parse_duration_ms(given.expires)
            if expires_at <= now:
                raise ValueError("a lifetime must be longer than zero")
        except ValueError as error:
            given.errors["expires"] = f"{error} (e.g. 90d; empty: never expires)"
    if given.errors:
        return await _tokens_page(request, signed, given, status=422)
    async with runtime.db.begin() as conn:
        issued = await tokens.create(
            conn, given.name, scopes, users.principal(signed.user).actor, now, expires_at
        )
    return await _tokens_page(
        request, signed, done=f"Token {issued.row.id} ({issued.row.name}) created.", issued=issued
    )


@router.post("/tokens/revoke")
async def revoke_token(request: Request, signed: Admin) -> Response:
    runtime = runtime_of(request)
    token_id = form_field(await request.form(), "id", 12)
    async with runtime.db.begin() as conn:
        row = await tokens.revoke(
            conn, token_id, users.principal(signed.user).actor, runtime.clock.now_ms()
        )
    if row is None:
        return await _tokens_page(request, signed, problem=f"No token {token_id!r}.", status=404)
    return await _tokens_page(request, signed, done=f"Token {row.id} ({row.name}) revoked.")


@dataclass(frozen=True, slots=True)
class SecretView:
    name: str
    key_id: str
    created: str
    updated: str


async def _secrets_page(
    request: Request, signed: Signed, status: int = 200, **values: Any
) -> Response:
    runtime = runtime_of(request)
    async with runtime.db.connect() as conn:
        found = await vault.listed(conn)
    shown = [SecretView(s.name, s.key_id, when(s.created_at), when(s.updated_at)) for s in found]
    for name in ("done", "problem", "name"):
        values.setdefault(name, "")
    values.setdefault("errors", {})
    return await render.page(
        request,
        signed,
        "trust_secrets.html",
        nav="trust",
        sub="secrets",
        status=status,
        secrets=shown,
        can_store=runtime.keyring is not None,
        **values,
    )


@router.get("/secrets")
async def secrets_page(request: Request, signed: Admin) -> Response:
    return await _secrets_page(request, signed)


@router.post("/secrets")
async def set_secret(request: Request, signed: Admin) -> Response:
    """Set or replace a secret (its value goes in, never out)."""
    runtime = runtime_of(request)
    form = await request.form()
    name, value = form_field(form, "name", 200).strip(), form_field(form, "value", 70_000)
    if runtime.keyring is None:
        return await _secrets_page(
            request, signed, problem="Secrets cannot be stored: set UPTALLY_SECRET_KEY.", status=409
        )
    errors: dict[str, str] = {}
    try:
        vault.check_name(name)
    except ValueError as error:
        errors["name"] = str(error).capitalize() + "."
    if not value:
        errors["value"] = "Enter the value to store."
    if not errors:
        try:
            async with runtime.db.begin() as conn:
                await vault.set_secret(
                    runtime.db,
                    conn,
                    runtime.keyring,
                    name,
                    value,
                    users.principal(signed.user).actor,
                    runtime.clock.now_ms(),
                )
        except ValueError as error:
            errors["value"] = str(error).capitalize() + "."
    if errors:
        return await _secrets_page(request, signed, name=name, errors=errors, status=422)
    return await _secrets_page(request, signed, done=f"Secret {name} set.")


@router.post("/secrets/delete")
async def delete_secret(request: Request, signed: Admin) -> Response:
    runtime = runtime_of(request)
    name = form_field(await request.form(), "name", 200)
    async with runtime.db.begin() as conn:
        deleted = await vault.delete_secret(
            conn, name, users.principal(signed.user).actor, runtime.clock.now_ms()
        )
    if not deleted:
        return await _secrets_page(request, signed, problem=f"No secret {name!r}.", status=404)
    return await _secrets_page(request, signed, done=f"Secret {name} deleted.")
