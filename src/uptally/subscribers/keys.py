"""The site's key for signing subscriber links (and their webhooks): made once, then kept.

Sealed in the secret store; without UPTALLY_SECRET_KEY, in the meta table.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os

from sqlalchemy.ext.asyncio import AsyncConnection

from uptally.clock import Millis
from uptally.secrets import Keyring
from uptally.signing import WHSEC
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


def webhook_secret(key: bytes, subscriber: str) -> str:
    """A webhook subscriber's Standard Webhooks secret (`whsec_…`): derived from the site key,
    so nothing more is stored; told to the subscriber once, when it subscribes."""
    derived = hmac.new(key, b"webhook-secret:" + subscriber.encode(), hashlib.sha256).digest()
    return WHSEC + base64.b64encode(derived).decode()
