"""One-time links: the first admin's setup link (printed by `serve` while no user exists) and
password-reset links. Only a SHA-256 of each token is stored; a link works once, for an hour."""

from __future__ import annotations

import hashlib
import secrets

from sqlalchemy.ext.asyncio import AsyncConnection

from uptally.clock import Millis
from uptally.store import accounts as store

SETUP = "setup"
RESET = "reset"
LIFETIME_MS = 3_600_000


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def issue(conn: AsyncConnection, kind: str, user_id: str | None, now: Millis) -> str:
    token = secrets.token_urlsafe(32)
    await store.insert_link(conn, _digest(token), kind, user_id, now, now + LIFETIME_MS)
    return token


async def setup_link(conn: AsyncConnection, now: Millis) -> str | None:
    """A new setup token while no user exists (None once one does)."""
    if await store.count_users(conn):
        return None
    return await issue(conn, SETUP, None, now)


async def is_live(conn: AsyncConnection, token: str, kind: str, now: Millis) -> bool:
    return (
        bool(token)
        and len(token) <= 128
        and await store.link_is_live(conn, _digest(token), kind, now)
    )


async def take(
    conn: AsyncConnection, token: str, kind: str, now: Millis
) -> tuple[bool, str | None]:
    """Use a link once: (taken, the user id it was issued for)."""
    if not token or len(token) > 128:
        return False, None
    return await store.take_link(conn, _digest(token), kind, now)
