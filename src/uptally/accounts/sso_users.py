"""The account of a single sign-on: found by its linked identity, linked by e-mail, or created;
its role set from the provider's groups at every sign-in. Audit-logged in the caller's
transaction."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncConnection

from uptally import audit
from uptally.accounts import users
from uptally.accounts.roles import Role
from uptally.accounts.sso import Identity, SsoRefused
from uptally.accounts.users import AccountError
from uptally.clock import Millis
from uptally.config.console import Console
from uptally.store import accounts as store
from uptally.store.accounts import UserRow

ACTOR = "oidc"  # who changed a role or made a user: the identity provider's groups


async def account_for(
    conn: AsyncConnection, identity: Identity, role: Role, now: Millis, settings: Console
) -> UserRow:
    """The user who signs in (with `role`); SsoRefused for a disabled user, an e-mail the
    provider has not verified, or one already linked to another identity."""
    user = await store.user_by_sso(conn, identity.subject)
    if user is None:
        if not identity.email_verified:
            raise SsoRefused(
                "email_unverified",
                f"The identity provider has not verified your e-mail address {identity.email}; "
                "verify it there, then sign in again.",
            )
        user = await store.user_by_email(conn, identity.email)
        if user is None:
            return await users.create(
                conn,
                identity.email,
                role,
                None,
                ACTOR,
                now,
                settings,
                name=identity.name,
                sso_subject=identity.subject,
            )
        if user.sso_subject is not None:
            raise SsoRefused(
                "linked_elsewhere",
                f"The uptally account {identity.email} is linked to another single sign-on "
                "identity; ask an administrator.",
            )
        await store.update_user(conn, user.id, sso_subject=identity.subject)
        await audit.append(
            conn,
            ACTOR,
            "user.sso_linked",
            f"user:{user.email}",
            {"subject": identity.subject},
            at=now,
        )
    if user.disabled_at is not None:
        raise SsoRefused(
            "disabled", f"The uptally account {user.email} is disabled; ask an administrator."
        )
    if user.role != role.value:
        try:
            user = await users.set_role(conn, user.email, role, ACTOR, now)
        except AccountError as error:  # the last admin's groups no longer make them admin
            raise SsoRefused(
                "last_admin",
                f"Your groups now give you the {role.value} role, but {error}; make another "
                "admin first.",
            ) from None
    return user


async def refused(conn: AsyncConnection, email: str, reason: str, client: str, now: Millis) -> None:
    """Record a refused single sign-on (in its own transaction: the refused one rolled back)."""
    await audit.append(
        conn,
        "anonymous",
        "user.sign_in_failed",
        f"user:{email[:200]}" if email else "user:unknown",
        {"ip": client, "reason": reason, "method": "oidc"},
        at=now,
    )
