"""The site's key for signing subscriber links: made once, then kept.

Sealed in the secret store; without UPTALLY_SECRET_KEY, in the meta table.
"""

from __future__ import annotations

import os

from sqlalchemy.ext.asyncio import AsyncConnection

from uptally.clock import Millis
from uptally.secrets import Keyring
from uptally.store import meta
from uptally.store import secrets as secret_store
from uptally.store import subscribers as store
from uptally.store.database import Database

SECRET_NAME = "uptally.subscriber-links"
META_KEY = "subscriber_link_key"


async def link_key(
    db: Database, conn: AsyncConnection, keyring: Keyring | None, now: Millis
) -> bytes:
    fresh = os.urandom(32).hex()
    if keyring is not None:
        existing = await secret_store.get_secret(conn, keyring, SECRET_NAME)
        if existing is None:
            # Insert-if-absent: two instances starting at once end up with the same key.
            await store.add_secret_once(db, conn, keyring, SECRET_NAME, fresh, now)
            existing = await secret_store.get_secret(conn, keyring, SECRET_NAME)
        assert existing is not None
        return bytes.fromhex(existing)
    value = await meta.get(conn, META_KEY)
    if value is None:
        await store.add_meta_once(db, conn, META_KEY, fresh)
        value = await meta.get(conn, META_KEY)
    assert value is not None
    return bytes.fromhex(value)
