"""Notification channels created through the API; their URL and secret are stored sealed."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from uptally.clock import Millis
from uptally.secrets import Keyring
from uptally.store.tables_incidents import channels


@dataclass(frozen=True, slots=True)
class StoredChannel:
    id: str
    url: str  # sealed (`enc:v1:…`); open with `opened`
    secret: str | None  # sealed
    events: list[str]
    components: list[str]
    monitors: list[str]
    created_at: Millis
    updated_at: Millis
    created_by: str
    signing: str = "uptally"  # uptally | standard
    previous_secret: str | None = None  # sealed; signs too while a secret is rotated

    def opened(self, keyring: Keyring) -> tuple[str, str | None]:
        """The URL and secret in clear (for a delivery, never for an answer)."""
        url = keyring.open_text(self.url, _aad(self.id, "url"))
        secret = keyring.open_text(self.secret, _aad(self.id, "secret")) if self.secret else None
        return url, secret

    def opened_previous(self, keyring: Keyring) -> str | None:
        if not self.previous_secret:
            return None
        return keyring.open_text(self.previous_secret, _aad(self.id, "previous_secret"))


def _aad(channel: str, part: str) -> str:
    return f"channel:{channel}:{part}"


def sealed(keyring: Keyring, channel: str, url: str, secret: str | None) -> tuple[str, str | None]:
    return (
        keyring.seal_text(url, _aad(channel, "url")),
        keyring.seal_text(secret, _aad(channel, "secret")) if secret else None,
    )


def sealed_previous(keyring: Keyring, channel: str, secret: str | None) -> str | None:
    return keyring.seal_text(secret, _aad(channel, "previous_secret")) if secret else None


async def save_channel(conn: AsyncConnection, channel: StoredChannel) -> bool:
    """Insert or replace; True if it was new."""
    values = {
        "url": channel.url,
        "secret": channel.secret,
        "events": json.dumps(channel.events),
        "components": json.dumps(channel.components),
        "monitors": json.dumps(channel.monitors),
        "updated_at": channel.updated_at,
        "signing": None if channel.signing == "uptally" else channel.signing,
        "previous_secret": channel.previous_secret,
    }
    changed = await conn.execute(update(channels).where(channels.c.id == channel.id).values(values))
    if changed.rowcount:
        return False
    await conn.execute(
        insert(channels),
        [
            {
                **values,
                "id": channel.id,
                "created_at": channel.created_at,
                "created_by": channel.created_by,
            }
        ],
    )
    return True


async def load_channels(conn: AsyncConnection) -> list[StoredChannel]:
    rows = await conn.execute(select(channels).order_by(channels.c.id))
    return [_stored(r) for r in rows]


async def get_channel(conn: AsyncConnection, channel_id: str) -> StoredChannel | None:
    row = (await conn.execute(select(channels).where(channels.c.id == channel_id))).first()
    return None if row is None else _stored(row)


def _stored(r: Any) -> StoredChannel:
    return StoredChannel(
        r.id,
        r.url,
        r.secret,
        json.loads(r.events),
        json.loads(r.components),
        json.loads(r.monitors),
        r.created_at,
        r.updated_at,
        r.created_by,
        r.signing or "uptally",
        r.previous_secret,
    )


async def delete_channel(conn: AsyncConnection, channel_id: str) -> bool:
    return bool((await conn.execute(delete(channels).where(channels.c.id == channel_id))).rowcount)
