"""Stored secrets, encrypted with AES-256-GCM; the name is bound to its ciphertext."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from uptally.clock import Millis
from uptally.secrets import Keyring, Sealed
from uptally.store.database import Database, upsert
from uptally.store.tables_trust import secrets


@dataclass(frozen=True, slots=True)
class SecretInfo:
    """What may be shown about a secret: that it is set, never its value."""

    name: str
    key_id: str
    created_at: Millis
    updated_at: Millis


async def put_secret(
    db: Database, conn: AsyncConnection, keyring: Keyring, name: str, value: str, now: Millis
) -> None:
    sealed = keyring.seal(value.encode(), name.encode())
    await conn.execute(
        upsert(db, secrets, ["name"], ["key_id", "ciphertext", "updated_at"]),
        [
            {
                "name": name,
                "key_id": sealed.key_id,
                "ciphertext": sealed.blob,
                "created_at": now,
                "updated_at": now,
            }
        ],
    )


async def get_secret(conn: AsyncConnection, keyring: Keyring, name: str) -> str | None:
    row = (
        await conn.execute(
            select(secrets.c.key_id, secrets.c.ciphertext).where(secrets.c.name == name)
        )
    ).first()
    if row is None:
        return None
    return keyring.open(Sealed(row.key_id, bytes(row.ciphertext)), name.encode()).decode()


async def list_secrets(conn: AsyncConnection) -> list[SecretInfo]:
    rows = await conn.execute(
        select(
            secrets.c.name, secrets.c.key_id, secrets.c.created_at, secrets.c.updated_at
        ).order_by(secrets.c.name)
    )
    return [SecretInfo(r.name, r.key_id, r.created_at, r.updated_at) for r in rows]


async def delete_secret(conn: AsyncConnection, name: str) -> bool:
    return bool((await conn.execute(delete(secrets).where(secrets.c.name == name))).rowcount)


async def rotate(conn: AsyncConnection, keyring: Keyring, now: Millis) -> list[str]:
    """Re-encrypt every secret not under the current key; return their names."""
    rows = (
        await conn.execute(
            select(secrets.c.name, secrets.c.key_id, secrets.c.ciphertext)
            .where(secrets.c.key_id != keyring.current.id)
            .order_by(secrets.c.name)
        )
    ).all()
    for row in rows:
        aad = row.name.encode()
        plaintext = keyring.open(Sealed(row.key_id, bytes(row.ciphertext)), aad)
        sealed = keyring.seal(plaintext, aad)
        await conn.execute(
            update(secrets)
            .where(secrets.c.name == row.name)
            .values(key_id=sealed.key_id, ciphertext=sealed.blob, updated_at=now)
        )
    return [row.name for row in rows]
