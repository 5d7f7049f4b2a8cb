"""Subscribers of the status page (e-mail or webhook), with their confirmation state."""

from __future__ import annotations

import json
from dataclasses import dataclass

from sqlalchemy import func, insert, select, update
from sqlalchemy.engine import Row
from sqlalchemy.ext.asyncio import AsyncConnection

from uptally.clock import Millis
from uptally.secrets import Keyring
from uptally.store.database import Database, insert_ignore
from uptally.store.tables import meta
from uptally.store.tables_incidents import subscribers
from uptally.store.tables_trust import secrets

PENDING = "pending"
ACTIVE = "active"
UNSUBSCRIBED = "unsubscribed"


@dataclass(frozen=True, slots=True)
class Subscriber:
    id: str
    kind: str  # email | webhook
    address: str
    components: list[str]  # empty: every component
    state: str
    created_at: Millis
    confirmed_at: Millis | None
    unsubscribed_at: Millis | None
    window_start: Millis
    window_count: int
    signing: str = "uptally"  # a webhook's: uptally (unsigned) | standard

    @property
    def target(self) -> str:
        return f"subscriber:{self.id}"


async def find(conn: AsyncConnection, kind: str, address: str) -> Subscriber | None:
    row = (
        await conn.execute(
            select(subscribers).where(subscribers.c.kind == kind, subscribers.c.address == address)
        )
    ).first()
    return _subscriber(row) if row else None


async def get(conn: AsyncConnection, subscriber_id: str) -> Subscriber | None:
    row = (await conn.execute(select(subscribers).where(subscribers.c.id == subscriber_id))).first()
    return _subscriber(row) if row else None


async def save(conn: AsyncConnection, subscriber: Subscriber) -> None:
    values = {
        "components": json.dumps(subscriber.components),
        "state": subscriber.state,
        "confirmed_at": subscriber.confirmed_at,
        "unsubscribed_at": subscriber.unsubscribed_at,
        "window_start": subscriber.window_start,
        "window_count": subscriber.window_count,
    }
    changed = await conn.execute(
        update(subscribers).where(subscribers.c.id == subscriber.id).values(values)
    )
    if not changed.rowcount:
        await conn.execute(
            insert(subscribers),
            [
                {
                    **values,
                    "id": subscriber.id,
                    "kind": subscriber.kind,
                    "address": subscriber.address,
                    "created_at": subscriber.created_at,
                    "signing": None if subscriber.signing == "uptally" else subscriber.signing,
                }
            ],
        )


async def active(conn: AsyncConnection) -> list[Subscriber]:
    rows = await conn.execute(
        select(subscribers).where(subscribers.c.state == ACTIVE).order_by(subscribers.c.id)
    )
    return [_subscriber(r) for r in rows]


async def listing(
    conn: AsyncConnection, *, state: str | None = None, limit: int = 100, after: str | None = None
) -> list[Subscriber]:
    query = select(subscribers)
    if state is not None:
        query = query.where(subscribers.c.state == state)
    if after is not None:
        query = query.where(subscribers.c.id > after)
    rows = await conn.execute(query.order_by(subscribers.c.id).limit(limit))
    return [_subscriber(r) for r in rows]


async def counts(conn: AsyncConnection) -> dict[tuple[str, str], int]:
    rows = await conn.execute(
        select(subscribers.c.kind, subscribers.c.state, func.count()).group_by(
            subscribers.c.kind, subscribers.c.state
        )
    )
    return {(r[0], r[1]): int(r[2]) for r in rows}


def _subscriber(r: Row[object]) -> Subscriber:
    return Subscriber(
        r.id,
        r.kind,
        r.address,
        json.loads(r.components),
        r.state,
        r.created_at,
        r.confirmed_at,
        r.unsubscribed_at,
        r.window_start,
        r.window_count,
        r.signing or "uptally",
    )


async def add_secret_once(
    db: Database, conn: AsyncConnection, keyring: Keyring, name: str, value: str, now: Millis
) -> None:
    """Store a secret unless one of that name exists (the secret store's sealing)."""
    sealed = keyring.seal(value.encode(), name.encode())
    await conn.execute(
        insert_ignore(db, secrets, ["name"]),
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


async def add_meta_once(db: Database, conn: AsyncConnection, key: str, value: str) -> None:
    await conn.execute(insert_ignore(db, meta, ["key"]), [{"key": key, "value": value}])
