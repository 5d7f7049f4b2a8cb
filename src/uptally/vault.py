"""Stored secrets as a service: set and delete, each audit-logged in the caller's transaction.

The admin API, `uptally secrets` and the console call these; values are never read back here.
"""

from __future__ import annotations

import re

from sqlalchemy.ext.asyncio import AsyncConnection

from uptally import audit
from uptally.clock import Millis
from uptally.secrets import Keyring
from uptally.store import secrets as store
from uptally.store.database import Database
from uptally.store.secrets import SecretInfo

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$"
_NAME_RE = re.compile(NAME_PATTERN)
MAX_VALUE = 65_536


def check_name(name: str) -> str:
    """The name, or ValueError saying what a name may be."""
    if not _NAME_RE.fullmatch(name):
        raise ValueError(
            "a secret name is 1 to 128 letters, digits and _ . : - (starting with a letter "
            "or digit)"
        )
    return name


async def set_secret(
    db: Database,
    conn: AsyncConnection,
    keyring: Keyring,
    name: str,
    value: str,
    actor: str,
    now: Millis,
) -> SecretInfo:
    """Store (or replace) a secret encrypted with the current key; ValueError for a bad name
    or an empty value."""
    check_name(name)
    if not value or len(value) > MAX_VALUE:
        raise ValueError(f"a secret value is 1 to {MAX_VALUE} characters")
    await store.put_secret(db, conn, keyring, name, value, now)
    await audit.append(conn, actor, "secret.set", f"secret:{name}", {}, at=now)
    return next(s for s in await store.list_secrets(conn) if s.name == name)


async def delete_secret(conn: AsyncConnection, name: str, actor: str, now: Millis) -> bool:
    """Delete a secret (audit-logged); False if there is none of that name."""
    if not await store.delete_secret(conn, name):
        return False
    await audit.append(conn, actor, "secret.deleted", f"secret:{name}", {}, at=now)
    return True


async def listed(conn: AsyncConnection) -> list[SecretInfo]:
    """Which secrets are set, by name (never their values)."""
    return await store.list_secrets(conn)
