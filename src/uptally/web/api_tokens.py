"""Admin API (admin scope): API tokens and secrets; secret values are never returned."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request

from uptally import tokens, vault
from uptally.clock import iso
from uptally.store.secrets import SecretInfo
from uptally.store.tokens import TokenRow
from uptally.web.auth import principal_of, require_scope
from uptally.web.deps import millis, runtime_of
from uptally.web.errors import ApiError
from uptally.web.schemas import ErrorOut
from uptally.web.schemas_trust import (
    SecretIn,
    SecretList,
    SecretOut,
    TokenCreated,
    TokenIn,
    TokenList,
    TokenOut,
)

router = APIRouter(
    prefix="/api/v1",
    dependencies=[Depends(require_scope("admin"))],
    responses={
        400: {"model": ErrorOut},
        401: {"model": ErrorOut},
        403: {"model": ErrorOut},
        404: {"model": ErrorOut},
        409: {"model": ErrorOut},
        413: {"model": ErrorOut},
        422: {"model": ErrorOut},
        429: {"model": ErrorOut},
    },
)

SecretName = Annotated[str, Path(pattern=vault.NAME_PATTERN, max_length=128)]
TokenId = Annotated[str, Path(pattern=r"^[0-9a-f]{12}$")]


def token_out(row: TokenRow) -> TokenOut:
    return TokenOut(
        id=row.id,
        name=row.name,
        scopes=list(row.scopes),
        created_at=iso(row.created_at) or "",
        created_by=row.created_by,
        expires_at=iso(row.expires_at),
        revoked_at=iso(row.revoked_at),
        last_used_at=iso(row.last_used_at),
    )


def secret_out(info: SecretInfo) -> SecretOut:
    return SecretOut(
        name=info.name,
        key_id=info.key_id,
        created_at=iso(info.created_at) or "",
        updated_at=iso(info.updated_at) or "",
    )


@router.get("/tokens", response_model=TokenList, tags=["tokens"])
async def list_tokens(request: Request) -> TokenList:
    async with runtime_of(request).db.connect() as conn:
        rows = await tokens.listed(conn)
    return TokenList(tokens=[token_out(row) for row in rows])


@router.post("/tokens", response_model=TokenCreated, status_code=201, tags=["tokens"])
async def create_token(request: Request, body: TokenIn) -> TokenCreated:
    """A new token; the answer holds the token itself, which is never shown again."""
    runtime = runtime_of(request)
    now = runtime.clock.now_ms()
    expires_at = millis(body.expires_at, "expires_at")
    try:
        async with runtime.db.begin() as conn:
            issued = await tokens.create(
                conn, body.name, body.scopes, principal_of(request).actor, now, expires_at
            )
    except ValueError as error:
        raise ApiError(422, str(error)) from None
    return TokenCreated(token=issued.token, **token_out(issued.row).model_dump())


@router.delete("/tokens/{token_id}", response_model=TokenOut, tags=["tokens"])
async def revoke_token(request: Request, token_id: TokenId) -> TokenOut:
    """Revoke a token at once (on every instance: tokens are checked in the database)."""
    runtime = runtime_of(request)
    async with runtime.db.begin() as conn:
        row = await tokens.revoke(
            conn, token_id, principal_of(request).actor, runtime.clock.now_ms()
        )
    if row is None:
        raise ApiError(404, f"no token {token_id!r}")
    return token_out(row)


@router.get("/secrets", response_model=SecretList, tags=["secrets"])
async def list_secrets(request: Request) -> SecretList:
    """Which secrets are set (never their values)."""
    async with runtime_of(request).db.connect() as conn:
        found = await vault.listed(conn)
    return SecretList(secrets=[secret_out(info) for info in found])


@router.put("/secrets/{name}", response_model=SecretOut, tags=["secrets"])
async def put_secret(request: Request, name: SecretName, body: SecretIn) -> SecretOut:
    """Store a secret encrypted with AES-256-GCM; the answer says only that it is set."""
    runtime = runtime_of(request)
    if runtime.keyring is None:
        raise ApiError(409, "secrets cannot be stored: set UPTALLY_SECRET_KEY first")
    now = runtime.clock.now_ms()
    try:
        async with runtime.db.begin() as conn:
            found = await vault.set_secret(
                runtime.db,
                conn,
                runtime.keyring,
                name,
                body.value,
                principal_of(request).actor,
                now,
            )
    except ValueError as error:
        raise ApiError(422, str(error)) from None
    return secret_out(found)


@router.delete("/secrets/{name}", status_code=204, tags=["secrets"])
async def delete_secret(request: Request, name: SecretName) -> None:
    runtime = runtime_of(request)
    async with runtime.db.begin() as conn:
        if not await vault.delete_secret(
            conn, name, principal_of(request).actor, runtime.clock.now_ms()
        ):
            raise ApiError(404, f"no secret {name!r}")
