"""Stored operator accounts, sessions and one-time links; the caller owns the transaction."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from sqlalchemy import delete, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from uptally.clock import Millis
from uptally.store.tables_accounts import (
    account_links,
    recovery_codes,
    user_sessions,
    users,
    webauthn_credentials,
)


@dataclass(frozen=True, slots=True)
class UserRow:
    id: str
    email: str
    name: str
    role: str
    password_hash: str | None
    sso_subject: str | None
    totp_secret: str | None
    totp_enabled_at: Millis | None
    failed_logins: int
    locked_until: Millis | None
    created_at: Millis
    created_by: str
    disabled_at: Millis | None
    last_login_at: Millis | None
    password_changed_at: Millis | None
    totp_last_step: int | None = None


@dataclass(frozen=True, slots=True)
class SessionRow:
    id: str
    user_id: str
    stage: str
    csrf: str
    created_at: Millis
    last_seen_at: Millis
    expires_at: Millis
    revoked_at: Millis | None
    ip: str
    user_agent: str


@dataclass(frozen=True, slots=True)
class PasskeyRow:
    id: str  # the credential id, base64url
    user_id: str
    name: str
    public_key: bytes
    sign_count: int
    created_at: Millis
    last_used_at: Millis | None


def _user(row: Any) -> UserRow:
    return UserRow(**{f.name: getattr(row, f.name) for f in fields(UserRow)})


def _session(row: Any) -> SessionRow:
    return SessionRow(**{f.name: getattr(row, f.name) for f in fields(SessionRow)})


async def insert_user(conn: AsyncConnection, row: UserRow) -> None:
    await conn.execute(insert(users).values(**{f.name: getattr(row, f.name) for f in fields(row)}))


async def user_by_id(conn: AsyncConnection, user_id: str) -> UserRow | None:
    row = (await conn.execute(select(users).where(users.c.id == user_id))).first()
    return _user(row) if row else None


async def user_by_email(conn: AsyncConnection, email: str) -> UserRow | None:
    row = (await conn.execute(select(users).where(users.c.email == email.lower()))).first()
    return _user(row) if row else None


async def user_by_sso(conn: AsyncConnection, subject: str) -> UserRow | None:
    row = (await conn.execute(select(users).where(users.c.sso_subject == subject))).first()
    return _user(row) if row else None


async def list_users(conn: AsyncConnection) -> list[UserRow]:
    return [_user(r) for r in await conn.execute(select(users).order_by(users.c.email))]


async def count_users(conn: AsyncConnection) -> int:
    return int((await conn.execute(select(func.count()).select_from(users))).scalar_one())


async def update_user(conn: AsyncConnection, user_id: str, **values: Any) -> None:
    await conn.execute(update(users).where(users.c.id == user_id).values(**values))


async def use_totp_step(conn: AsyncConnection, user_id: str, step: int) -> bool:
    """Record `step` as the last TOTP step used, if it is later than the last one (a
    conditional UPDATE: of two requests with the same code, one wins)."""
    result = await conn.execute(
        update(users)
        .where(
            users.c.id == user_id,
            (users.c.totp_last_step.is_(None)) | (users.c.totp_last_step < step),
        )
        .values(totp_last_step=step)
    )
    return bool(result.rowcount)


async def insert_session(conn: AsyncConnection, row: SessionRow) -> None:
    await conn.execute(
        insert(user_sessions).values(**{f.name: getattr(row, f.name) for f in fields(row)})
    )


async def session_by_id(conn: AsyncConnection, session_id: str) -> SessionRow | None:
    query = select(user_sessions).where(user_sessions.c.id == session_id)
    row = (await conn.execute(query)).first()
    return _session(row) if row else None


async def sessions_of(conn: AsyncConnection, user_id: str, now: Millis) -> list[SessionRow]:
    """A user's live sessions (not revoked, not past the absolute timeout), newest first."""
    query = (
        select(user_sessions)
        .where(
            user_sessions.c.user_id == user_id,
            user_sessions.c.revoked_at.is_(None),
            user_sessions.c.expires_at > now,
        )
        .order_by(user_sessions.c.last_seen_at.desc())
    )
    return [_session(r) for r in await conn.execute(query)]


async def update_session(conn: AsyncConnection, session_id: str, **values: Any) -> None:
    await conn.execute(
        update(user_sessions).where(user_sessions.c.id == session_id).values(**values)
    )


async def revoke_sessions(
    conn: AsyncConnection, user_id: str, now: Millis, keep: str | None = None
) -> int:
    """End a user's sessions (all, or all but `keep`); how many were live."""
    query = update(user_sessions).where(
        user_sessions.c.user_id == user_id, user_sessions.c.revoked_at.is_(None)
    )
    if keep is not None:
        query = query.where(user_sessions.c.id != keep)
    return int((await conn.execute(query.values(revoked_at=now))).rowcount)


async def prune_sessions(conn: AsyncConnection, before: Millis) -> int:
    """Forget sessions that ended before `before`."""
    query = delete(user_sessions).where(user_sessions.c.expires_at < before)
    return int((await conn.execute(query)).rowcount)


async def insert_link(
    conn: AsyncConnection,
    link_id: str,
    kind: str,
    user_id: str | None,
    now: Millis,
    expires_at: Millis,
) -> None:
    await conn.execute(
        insert(account_links).values(
            id=link_id, kind=kind, user_id=user_id, created_at=now, expires_at=expires_at
        )
    )


async def take_link(
    conn: AsyncConnection, link_id: str, kind: str, now: Millis
) -> tuple[bool, str | None]:
    """Use a one-time link (a conditional UPDATE: two requests never both take it); (taken,
    its user id)."""
    result = await conn.execute(
        update(account_links)
        .where(
            account_links.c.id == link_id,
            account_links.c.kind == kind,
            account_links.c.used_at.is_(None),
            account_links.c.expires_at > now,
        )
        .values(used_at=now)
        .returning(account_links.c.user_id)
    )
    row = result.first()
    return (True, row.user_id) if row else (False, None)


async def prune_links(conn: AsyncConnection, kind: str, now: Millis) -> int:
    """Forget expired links of a kind."""
    query = delete(account_links).where(
        account_links.c.kind == kind, account_links.c.expires_at <= now
    )
    return int((await conn.execute(query)).rowcount)


async def link_is_live(conn: AsyncConnection, link_id: str, kind: str, now: Millis) -> bool:
    query = select(account_links.c.id).where(
        account_links.c.id == link_id,
        account_links.c.kind == kind,
        account_links.c.used_at.is_(None),
        account_links.c.expires_at > now,
    )
    return (await conn.execute(query)).first() is not None


async def replace_recovery_codes(
    conn: AsyncConnection, user_id: str, hashes: list[str], now: Millis
) -> None:
    await conn.execute(delete(recovery_codes).where(recovery_codes.c.user_id == user_id))
    if hashes:
        await conn.execute(
            insert(recovery_codes),
            [{"user_id": user_id, "code_hash": h, "created_at": now} for h in hashes],
        )


async def use_recovery_code(
    conn: AsyncConnection, user_id: str, code_hash: str, now: Millis
) -> bool:
    result = await conn.execute(
        update(recovery_codes)
        .where(
            recovery_codes.c.user_id == user_id,
            recovery_codes.c.code_hash == code_hash,
            recovery_codes.c.used_at.is_(None),
        )
        .values(used_at=now)
    )
    return bool(result.rowcount)


async def unused_recovery_codes(conn: AsyncConnection, user_id: str) -> int:
    query = select(func.count()).where(
        recovery_codes.c.user_id == user_id, recovery_codes.c.used_at.is_(None)
    )
    return int((await conn.execute(query)).scalar_one())


async def set_challenge(conn: AsyncConnection, session_id: str, challenge: str | None) -> None:
    await update_session(conn, session_id, challenge=challenge)


async def take_challenge(conn: AsyncConnection, session_id: str) -> str | None:
    """A session's passkey challenge, used up (a conditional UPDATE: it answers once)."""
    query = select(user_sessions.c.challenge).where(user_sessions.c.id == session_id)
    challenge = (await conn.execute(query)).scalar_one_or_none()
    if challenge is None:
        return None
    result = await conn.execute(
        update(user_sessions)
        .where(user_sessions.c.id == session_id, user_sessions.c.challenge == challenge)
        .values(challenge=None)
    )
    return str(challenge) if result.rowcount else None


async def insert_passkey(conn: AsyncConnection, row: PasskeyRow) -> None:
    values = {f.name: getattr(row, f.name) for f in fields(row)}
    await conn.execute(insert(webauthn_credentials).values(**values))


async def passkeys_of(conn: AsyncConnection, user_id: str) -> list[PasskeyRow]:
    query = (
        select(webauthn_credentials)
        .where(webauthn_credentials.c.user_id == user_id)
        .order_by(webauthn_credentials.c.created_at)
    )
    return [
        PasskeyRow(**{f.name: getattr(r, f.name) for f in fields(PasskeyRow)})
        for r in await conn.execute(query)
    ]


async def passkey_by_id(conn: AsyncConnection, credential_id: str) -> PasskeyRow | None:
    query = select(webauthn_credentials).where(webauthn_credentials.c.id == credential_id[:512])
    row = (await conn.execute(query)).first()
    return PasskeyRow(**{f.name: getattr(row, f.name) for f in fields(PasskeyRow)}) if row else None


async def count_passkeys(conn: AsyncConnection, user_id: str) -> int:
    query = select(func.count()).where(webauthn_credentials.c.user_id == user_id)
    return int((await conn.execute(query)).scalar_one())


async def used_passkey(
    conn: AsyncConnection, credential_id: str, old_count: int, new_count: int, now: Millis
) -> bool:
    """Record a sign-in with a passkey (conditional on the count read: two uses of one
    assertion never both succeed)."""
    result = await conn.execute(
        update(webauthn_credentials)
        .where(
            webauthn_credentials.c.id == credential_id,
            webauthn_credentials.c.sign_count == old_count,
        )
        .values(sign_count=new_count, last_used_at=now)
    )
    return bool(result.rowcount)


async def delete_passkey(conn: AsyncConnection, user_id: str, credential_id: str) -> bool:
    result = await conn.execute(
        delete(webauthn_credentials).where(
            webauthn_credentials.c.user_id == user_id, webauthn_credentials.c.id == credential_id
        )
    )
    return bool(result.rowcount)


async def delete_passkeys(conn: AsyncConnection, user_id: str) -> int:
    query = delete(webauthn_credentials).where(webauthn_credentials.c.user_id == user_id)
    return int((await conn.execute(query)).rowcount)
