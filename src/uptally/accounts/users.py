"""Operator accounts: create, change role, disable, set passwords, and sign in with lockout.

Every change and every sign-in attempt is audit-logged in the caller's transaction. Password
hashing (argon2id, ~0.1 s of CPU) runs off the event loop (`offloop`).
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncConnection

from uptally import audit, offloop
from uptally.accounts import passwords
from uptally.accounts.roles import SCOPE, Role
from uptally.clock import Millis
from uptally.config.console import Console
from uptally.store import accounts as store
from uptally.store.accounts import UserRow
from uptally.tokens import Kind, Principal

_EMAIL_RE = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,189}$")


class AccountError(ValueError):
    """A change refused, with a message to show (bad input, unknown user)."""


def check_email(email: str) -> str:
    normalised = email.strip().lower()
    if not _EMAIL_RE.match(normalised):
        raise AccountError(f"{email!r} is not an e-mail address")
    return normalised


def principal(user: UserRow) -> Principal:
    """How an operator acts: the scope of their role, named by e-mail in the audit log."""
    return Principal(Kind.OPERATOR, user.email, frozenset({SCOPE[Role(user.role)]}))


def role_of(user: UserRow) -> Role:
    return Role(user.role)


def state_of(user: UserRow, now: Millis) -> str:
    """ "disabled", "locked" (too many failed sign-ins, for now) or "active"."""
    if user.disabled_at is not None:
        return "disabled"
    if user.locked_until is not None and user.locked_until > now:
        return "locked"
    return "active"


async def listed(conn: AsyncConnection) -> list[UserRow]:
    """Every user (the CLI's `users list`, the console's users page)."""
    return await store.list_users(conn)


async def check_password(password: str, email: str, settings: Console) -> None:
    found = passwords.problems(password, email, settings.min_password)
    if found:
        raise AccountError("; ".join(found))


async def create(
    conn: AsyncConnection,
    email: str,
    role: Role,
    password: str | None,
    actor: str,
    now: Millis,
    settings: Console,
    *,
    name: str = "",
    sso_subject: str | None = None,
) -> UserRow:
    """A new user (audit-logged); AccountError for a taken e-mail or a weak password. A user
    without a password signs in through single sign-on or a reset link only."""
    email = check_email(email)
    if await store.user_by_email(conn, email) is not None:
        raise AccountError(f"a user with e-mail {email} exists already")
    hashed = None
    if password is not None:
        await check_password(password, email, settings)
        hashed = await offloop.run(passwords.hash_password, password)
    row = UserRow(
        id=secrets.token_hex(8),
        email=email,
        name=(name.strip() or email.partition("@")[0])[:128],
        role=role.value,
        password_hash=hashed,
        sso_subject=sso_subject,
        totp_secret=None,
        totp_enabled_at=None,
        failed_logins=0,
        locked_until=None,
        created_at=now,
        created_by=actor,
        disabled_at=None,
        last_login_at=None,
        password_changed_at=now if hashed else None,
    )
    await store.insert_user(conn, row)
    await audit.append(
        conn,
        actor,
        "user.created",
        f"user:{email}",
        {"role": role.value, "sso": bool(sso_subject)},
        at=now,
    )
    return row


async def existing(conn: AsyncConnection, email: str) -> UserRow:
    user = await store.user_by_email(conn, email.strip())
    if user is None:
        raise AccountError(f"no user with e-mail {email.strip().lower()}")
    return user


async def set_role(
    conn: AsyncConnection, email: str, role: Role, actor: str, now: Millis
) -> UserRow:
    user = await existing(conn, email)
    if user.role != role.value:
        if user.role == Role.ADMIN and not await _other_admin(conn, user.id):
            raise AccountError("the last active admin keeps the admin role")
        await store.update_user(conn, user.id, role=role.value)
        await audit.append(
            conn,
            actor,
            "user.role_changed",
            f"user:{user.email}",
            {"from": user.role, "to": role.value},
            at=now,
        )
    return await existing(conn, email)


async def set_disabled(
    conn: AsyncConnection, email: str, disabled: bool, actor: str, now: Millis
) -> UserRow:
    """Disable (ending every session) or enable a user."""
    user = await existing(conn, email)
    if disabled and user.disabled_at is None:
        if user.role == Role.ADMIN and not await _other_admin(conn, user.id):
            raise AccountError("the last active admin cannot be disabled")
        await store.update_user(conn, user.id, disabled_at=now)
        ended = await store.revoke_sessions(conn, user.id, now)
        await audit.append(
            conn, actor, "user.disabled", f"user:{user.email}", {"sessions_ended": ended}, at=now
        )
    elif not disabled and user.disabled_at is not None:
        await store.update_user(conn, user.id, disabled_at=None, failed_logins=0, locked_until=None)
        await audit.append(conn, actor, "user.enabled", f"user:{user.email}", {}, at=now)
    return await existing(conn, email)


async def set_password(
    conn: AsyncConnection,
    user: UserRow,
    password: str,
    actor: str,
    now: Millis,
    settings: Console,
    *,
    keep_session: str | None = None,
) -> None:
    """A new password (checked); every session of the user ends (but `keep_session`, the one
    changing its own password) and a lockout is lifted."""
    await check_password(password, user.email, settings)
    hashed = await offloop.run(passwords.hash_password, password)
    await store.update_user(
        conn,
        user.id,
        password_hash=hashed,
        password_changed_at=now,
        failed_logins=0,
        locked_until=None,
    )
    ended = await store.revoke_sessions(conn, user.id, now, keep_session)
    await audit.append(
        conn, actor, "user.password_set", f"user:{user.email}", {"sessions_ended": ended}, at=now
    )


async def _other_admin(conn: AsyncConnection, user_id: str) -> bool:
    return any(
        u.role == Role.ADMIN and u.disabled_at is None and u.id != user_id
        for u in await store.list_users(conn)
    )


class Outcome(StrEnum):
    OK = "ok"
    INVALID = "invalid"  # unknown e-mail or wrong password (the same answer for both)
    LOCKED = "locked"
    DISABLED = "disabled"


@dataclass(frozen=True, slots=True)
class SignIn:
    outcome: Outcome
    user: UserRow | None = None
    locked_until: Millis | None = None


async def sign_in(
    conn: AsyncConnection, email: str, password: str, now: Millis, client: str, settings: Console
) -> SignIn:
    """Check a password (audit-logged either way). `lockout_failures` wrong passwords in a row
    lock the account for `lockout_time`; a locked account answers LOCKED even to the right
    password, so guessing on cannot tell."""
    user = await store.user_by_email(conn, email.strip())
    target = f"user:{email.strip().lower()[:200]}"
    matches = await offloop.run(passwords.verify, user.password_hash if user else None, password)
    if user is None:
        await audit.append(
            conn,
            "anonymous",
            "user.sign_in_failed",
            target,
            {"ip": client, "reason": "unknown"},
            at=now,
        )
        return SignIn(Outcome.INVALID)
    if user.disabled_at is not None:
        await audit.append(
            conn,
            "anonymous",
            "user.sign_in_failed",
            target,
            {"ip": client, "reason": "disabled"},
            at=now,
        )
        return SignIn(Outcome.DISABLED)
    if user.locked_until is not None and user.locked_until > now:
        await audit.append(
            conn,
            "anonymous",
            "user.sign_in_failed",
            target,
            {"ip": client, "reason": "locked"},
            at=now,
        )
        return SignIn(Outcome.LOCKED, user, user.locked_until)
    if not matches:
        locked = await _failed(conn, user, "password", client, now, settings)
        return SignIn(Outcome.INVALID) if locked is None else SignIn(Outcome.LOCKED, user, locked)
    # The failure count starts again at signed_in(), once every factor is given: a known
    # password must not reset the count of wrong second-factor codes.
    if user.password_hash and passwords.needs_rehash(user.password_hash):
        hashed = await offloop.run(passwords.hash_password, password)
        await store.update_user(conn, user.id, password_hash=hashed)
    return SignIn(Outcome.OK, user)


async def signed_in(
    conn: AsyncConnection, user: UserRow, how: str, client: str, now: Millis
) -> None:
    """Record a completed sign-in (after every factor); the count of failures starts again."""
    await store.update_user(conn, user.id, last_login_at=now, failed_logins=0, locked_until=None)
    await audit.append(
        conn,
        principal(user).actor,
        "user.signed_in",
        f"user:{user.email}",
        {"ip": client, "method": how},
        at=now,
    )


async def _failed(
    conn: AsyncConnection,
    user: UserRow,
    reason: str,
    client: str,
    now: Millis,
    settings: Console,
) -> Millis | None:
    """A wrong password or second-factor code (audit-logged); `lockout_failures` in a row lock
    the account for `lockout_time`: when it is locked until, else None."""
    fresh = await store.user_by_id(conn, user.id) or user
    failures = fresh.failed_logins + 1
    locked = now + settings.lockout_time if failures >= settings.lockout_failures else None
    await store.update_user(
        conn, user.id, failed_logins=0 if locked else failures, locked_until=locked
    )
    target = f"user:{user.email}"
    await audit.append(
        conn, "anonymous", "user.sign_in_failed", target, {"ip": client, "reason": reason}, at=now
    )
    if locked is not None:
        await audit.append(
            conn, "system", "user.locked", target, {"until": locked, "failures": failures}, at=now
        )
    return locked


async def code_refused(
    conn: AsyncConnection, user: UserRow, client: str, now: Millis, settings: Console
) -> Millis | None:
    """A wrong (or replayed) second-factor code after the right password: audit-logged, and
    counted towards the lockout like a wrong password, so a known password does not give
    unlimited guesses at the code. When the account is now locked until, else None."""
    return await _failed(conn, user, "second_factor", client, now, settings)


async def set_name(conn: AsyncConnection, user: UserRow, name: str, actor: str, now: Millis) -> str:
    """A user's display name (AccountError if empty); audit-logged."""
    cleaned = " ".join(name.split())[:128]
    if not cleaned:
        raise AccountError("a name cannot be empty")
    if cleaned != user.name:
        await store.update_user(conn, user.id, name=cleaned)
        await audit.append(
            conn, actor, "user.renamed", f"user:{user.email}", {"name": cleaned}, at=now
        )
    return cleaned
