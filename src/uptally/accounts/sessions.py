"""Server-side sessions of signed-in browsers: open, resolve (idle and absolute timeouts),
promote after the second factor, and end (one, all of a user's, all but the current one).

The cookie holds a random token; only its SHA-256 is stored, so a copy of the database opens no
session. Each session has its own CSRF token, compared in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncConnection

from uptally import audit
from uptally.clock import Millis
from uptally.config.console import Console
from uptally.store import accounts as store
from uptally.store.accounts import SessionRow, UserRow

FULL = "full"
SECOND_FACTOR = "second_factor"  # the password was right; a code or passkey is still owed
SECOND_FACTOR_MS = 5 * 60_000  # how long the second step may take
TOUCH_EVERY_MS = 60_000  # last_seen_at is written at most this often


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class Opened:
    token: str  # for the cookie; never stored
    session: SessionRow


@dataclass(frozen=True, slots=True)
class Signed:
    user: UserRow
    session: SessionRow

    @property
    def complete(self) -> bool:
        return self.session.stage == FULL


async def open_session(
    conn: AsyncConnection,
    user: UserRow,
    now: Millis,
    settings: Console,
    *,
    ip: str,
    user_agent: str,
    stage: str = FULL,
) -> Opened:
    token = secrets.token_urlsafe(32)
    lifetime = settings.session_absolute if stage == FULL else SECOND_FACTOR_MS
    row = SessionRow(
        id=_digest(token),
        user_id=user.id,
        stage=stage,
        csrf=secrets.token_hex(32),
        created_at=now,
        last_seen_at=now,
        expires_at=now + lifetime,
        revoked_at=None,
        ip=ip[:64],
        user_agent=user_agent[:256],
    )
    await store.insert_session(conn, row)
    return Opened(token, row)


async def resolve(
    conn: AsyncConnection, token: str, now: Millis, settings: Console
) -> tuple[Signed | None, bool]:
    """The live session of a cookie's token and whether its last use should be written; (None,
    False) for an unknown, ended, idle or expired session or a disabled user."""
    if not token or len(token) > 128:
        return None, False
    session = await store.session_by_id(conn, _digest(token))
    if session is None or session.revoked_at is not None or session.expires_at <= now:
        return None, False
    if now - session.last_seen_at >= settings.session_idle:
        return None, False
    user = await store.user_by_id(conn, session.user_id)
    if user is None or user.disabled_at is not None:
        return None, False
    return Signed(user, session), now - session.last_seen_at >= TOUCH_EVERY_MS


async def touch(conn: AsyncConnection, session: SessionRow, now: Millis) -> None:
    await store.update_session(conn, session.id, last_seen_at=now)


async def promote(
    conn: AsyncConnection, session: SessionRow, now: Millis, settings: Console
) -> Opened:
    """The second factor was given: the pending session ends and a full one with a new token
    (and CSRF token) begins, so a token seen before the second factor opens nothing."""
    await store.update_session(conn, session.id, revoked_at=now)
    user = await store.user_by_id(conn, session.user_id)
    assert user is not None
    return await open_session(
        conn, user, now, settings, ip=session.ip, user_agent=session.user_agent
    )


async def end(conn: AsyncConnection, session: SessionRow, now: Millis) -> None:
    await store.update_session(conn, session.id, revoked_at=now)


async def end_one(
    conn: AsyncConnection, user: UserRow, session_id: str, actor: str, now: Millis
) -> bool:
    """End one of a user's sessions, named by its stored id (from their own list of sessions);
    audit-logged. False if it is not theirs or has ended already."""
    session = await store.session_by_id(conn, session_id[:64])
    if session is None or session.user_id != user.id or session.revoked_at is not None:
        return False
    await store.update_session(conn, session.id, revoked_at=now)
    details = {"ip": session.ip, "created_at": session.created_at}
    await audit.append(conn, actor, "user.session_ended", f"user:{user.email}", details, at=now)
    return True


async def end_all(
    conn: AsyncConnection, user: UserRow, actor: str, now: Millis, keep: SessionRow | None = None
) -> int:
    """ "Sign out everywhere" (keeping `keep`, the current session, if given); audit-logged."""
    ended = await store.revoke_sessions(conn, user.id, now, keep.id if keep else None)
    await audit.append(
        conn, actor, "user.sessions_ended", f"user:{user.email}", {"sessions": ended}, at=now
    )
    return ended


def csrf_matches(session: SessionRow, presented: str | None) -> bool:
    return bool(presented) and hmac.compare_digest(session.csrf, presented or "")
