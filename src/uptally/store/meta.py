"""Small named values about the database itself (e.g. whether the last shutdown was clean)."""

from __future__ import annotations

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncConnection

from uptally.store.database import Database, upsert
from uptally.store.tables import meta


async def get(conn: AsyncConnection, key: str) -> str | None:
    return (await conn.execute(select(meta.c.value).where(meta.c.key == key))).scalar()


async def put(db: Database, conn: AsyncConnection, key: str, value: str) -> None:
    await conn.execute(upsert(db, meta, ["key"], ["value"]), [{"key": key, "value": value}])


async def pop(conn: AsyncConnection, key: str) -> str | None:
    value = await get(conn, key)
    if value is not None:
        await conn.execute(delete(meta).where(meta.c.key == key))
    return value
