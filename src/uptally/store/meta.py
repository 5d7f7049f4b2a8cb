"""Small named values about the database itself (e.g. whether the last shutdown was clean)."""

from __future__ import annotations

import os

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from uptally.store.database import Database, insert_ignore, upsert
from uptally.store.tables import meta

SECRET_SALT = "secret_key_salt"


async def get(conn: AsyncConnection, key: str) -> str | None:
    return (await conn.execute(select(meta.c.value).where(meta.c.key == key))).scalar()


async def put(db: Database, conn: AsyncConnection, key: str, value: str) -> None:
    await conn.execute(upsert(db, meta, ["key"], ["value"]), [{"key": key, "value": value}])


async def pop(conn: AsyncConnection, key: str) -> str | None:
    value = await get(conn, key)
    if value is not None:
        await conn.execute(delete(meta).where(meta.c.key == key))
    return value


async def installation_salt(db: Database, conn: AsyncConnection) -> bytes:
    """This installation's random scrypt salt for passphrase keys (made on first use)."""
    value = await get(conn, SECRET_SALT)
    if value is None:
        fresh = {"key": SECRET_SALT, "value": os.urandom(16).hex()}
        await conn.execute(insert_ignore(db, meta, ["key"]), [fresh])  # another instance may win
        value = await get(conn, SECRET_SALT)
    return bytes.fromhex(value or "")
