"""Stored API tokens: only a SHA-256 of each secret is kept, never the token itself."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from uptally.clock import Millis
from uptally.store.tables_trust import api_tokens


@dataclass(frozen=True, slots=True)
class TokenRow:
    id: str
    name: str
    scopes: tuple[str, ...]
    secret_hash: str
    created_at: Millis
    created_by: str
    expires_at: Millis | None = None
    revoked_at: Millis | None = None
    revoked_by: str | None = None
    last_used_at: Millis | None = None
    last_used_ip: str | None = None


async def insert_token(conn: AsyncConnection, row: TokenRow) -> None:
    await conn.execute(
        insert(api_tokens).values(
            id=row.id,
            name=row.name,
            scopes=" ".join(row.scopes),
            secret_hash=row.secret_hash,
            created_at=row.created_at,
            created_by=row.created_by,
            expires_at=row.expires_at,
        )
    )


async def get_token(conn: AsyncConnection, token_id: str) -> TokenRow | None:
    row = (await conn.execute(select(api_tokens).where(api_tokens.c.id == token_id))).first()
    return _row(row) if row else None


async def list_tokens(conn: AsyncConnection, include_revoked: bool = True) -> list[TokenRow]:
    query = select(api_tokens).order_by(api_tokens.c.created_at, api_tokens.c.id)
    if not include_revoked:
        query = query.where(api_tokens.c.revoked_at.is_(None))
    return [_row(r) for r in await conn.execute(query)]


async def revoke(conn: AsyncConnection, token_id: str, at: Millis, by: str) -> bool:
    """Mark a token revoked; False if there is no such token or it was revoked already."""
    result = await conn.execute(
        update(api_tokens)
        .where(api_tokens.c.id == token_id, api_tokens.c.revoked_at.is_(None))
        .values(revoked_at=at, revoked_by=by)
    )
    return bool(result.rowcount)


async def touch(conn: AsyncConnection, token_id: str, at: Millis, ip: str | None) -> None:
    await conn.execute(
        update(api_tokens)
        .where(api_tokens.c.id == token_id)
        .values(last_used_at=at, last_used_ip=(ip or "")[:64] or None)
    )


def _row(r: Any) -> TokenRow:
    return TokenRow(
        r.id,
        r.name,
        tuple(r.scopes.split()),
        r.secret_hash,
        r.created_at,
        r.created_by,
        r.expires_at,
        r.revoked_at,
        r.revoked_by,
        r.last_used_at,
        r.last_used_ip,
    )
