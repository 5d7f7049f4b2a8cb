"""Subscribing, confirming and unsubscribing, each in the caller's transaction, audit-logged.

E-mail subscriptions are double opt-in: a confirmation mail (a queued delivery, retried like
any) carries a signed link; nothing else is sent before it is followed. Webhook subscriptions
start at once (there is nobody to confirm) and answer their unsubscribe link; asking again for
a known webhook sends a confirmation to that webhook instead. Unsubscribing voids every
confirmation link sent before it.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncConnection

from uptally import audit
from uptally.clock import Millis
from uptally.config.schema import Config
from uptally.ids import new_id
from uptally.netguard import Guard, UnsafeTarget, check_url
from uptally.signing import Scheme
from uptally.store import deliveries as delivery_store
from uptally.store import subscribers as store
from uptally.store.database import Database
from uptally.store.subscribers import ACTIVE, PENDING, UNSUBSCRIBED, Subscriber
from uptally.subscribers import links

CONFIRM_KIND = "subscriber.confirm"
_EMAIL = re.compile(
    r"^[^@\s<>\"',;\x00-\x1f\x7f]{1,64}@[A-Za-z0-9](?:[A-Za-z0-9\-]{0,62}\.)+[A-Za-z]{2,63}$"
)


class SubscribeError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class Outcome:
    subscriber: Subscriber
    unsubscribe_url: str | None = None  # for webhooks (mail carries it in every message)


@dataclass(frozen=True, slots=True)
class Ways:
    """How visitors may subscribe, by the config (neither: the status page offers nothing)."""

    email: bool  # needs notifications.smtp and site.url for the confirmation link
    webhook: bool

    @property
    def any(self) -> bool:
        return self.email or self.webhook


def ways(config: Config) -> Ways:
    settings = config.notifications.subscribers
    if not settings.enabled:
        return Ways(email=False, webhook=False)
    email = settings.email and config.notifications.smtp is not None and bool(config.site.url)
    return Ways(email=email, webhook=settings.webhook)


def normalised_email(value: str) -> str:
    address = value.strip()
    if len(address) > 254 or not _EMAIL.match(address):
        raise SubscribeError(422, "not an e-mail address")
    local, _, domain = address.rpartition("@")
    return f"{local}@{domain.lower()}"


async def checked_webhook(url: str, guard: Guard | None) -> str:
    """The URL if it is a usable webhook that the guard (None: private allowed) lets through."""
    url = url.strip()
    if re.search(r"[\s\x00-\x1f\x7f]", url):
        raise SubscribeError(422, "a webhook URL must not contain spaces or control characters")
    try:
        parts = urlsplit(url)
        host = parts.hostname
        parts.port  # noqa: B018 (raises ValueError for a port out of range)
    except ValueError:  # e.g. "http://[::1/": an unclosed IPv6 literal
        raise SubscribeError(422, "not a valid webhook URL") from None
    if parts.scheme not in ("http", "https") or not host or len(url) > 512:
        raise SubscribeError(422, "a webhook is an http(s):// URL of at most 512 characters")
    if guard is not None:
        try:
            await check_url(url, guard)
        except UnsafeTarget as error:
            raise SubscribeError(422, f"webhook refused: {error}") from None
    return url


def checked_components(requested: Sequence[str], config: Config) -> list[str]:
    known = {c.id for c in config.components}
    unknown = sorted(set(requested) - known)
    if unknown:
        raise SubscribeError(422, f"unknown component(s): {', '.join(unknown)}")
    return sorted(set(requested))


async def subscribe_email(
    db: Database,
    conn: AsyncConnection,
    config: Config,
    address: str,
    components: list[str],
    actor: str,
    now: Millis,
) -> Outcome:
    """Queue a confirmation mail (the subscription starts once its link is followed)."""
    existing = await store.find(conn, "email", address)
    subscriber = existing or Subscriber(
        new_id(now), "email", address, components, PENDING, now, None, None, now, 0
    )
    if subscriber.state == PENDING:
        subscriber = replace(subscriber, components=components)
    await _ask_to_confirm(db, conn, config, subscriber, components, actor, now, {})
    return Outcome(subscriber)


async def subscribe_webhook(
    db: Database,
    conn: AsyncConnection,
    config: Config,
    url: str,
    components: list[str],
    actor: str,
    now: Millis,
    base_url: str,
    key: bytes,
    signing: Scheme = Scheme.UPTALLY,
) -> Outcome:
    """A new webhook starts at once and is answered its unsubscribe link. A known one is a
    request like any other: its owner confirms it through the webhook itself (whoever asks
    learns nothing of it, and its filter and signing stay as they were until confirmed)."""
    existing = await store.find(conn, "webhook", url)
    if existing is not None:
        links_base = {"base": base_url}
        await _ask_to_confirm(db, conn, config, existing, components, actor, now, links_base)
        return Outcome(existing)
    subscriber = Subscriber(
        new_id(now), "webhook", url, components, ACTIVE, now, now, None, now, 0, signing
    )
    await store.save(conn, subscriber)
    await audit.append(
        conn,
        actor,
        "subscriber.subscribed",
        f"subscriber:{subscriber.id}",
        {"kind": "webhook", "components": components, "signing": str(signing)},
        at=now,
    )
    return Outcome(subscriber, links.unsubscribe_url(base_url, key, subscriber.id))


async def _ask_to_confirm(
    db: Database,
    conn: AsyncConnection,
    config: Config,
    subscriber: Subscriber,
    components: list[str],
    actor: str,
    now: Millis,
    extra: dict[str, str],
) -> None:
    """Queue a confirmation (a link for `components`) to the subscriber's own address, at
    most `per_address` per window. Someone who unsubscribed is pending again, but keeps the
    time they left: links sent before it stay void (see `confirm`)."""
    settings = config.notifications.subscribers
    if now - subscriber.window_start >= settings.window:
        subscriber = replace(subscriber, window_start=now, window_count=0)
    if subscriber.window_count >= settings.per_address:
        raise SubscribeError(429, "too many requests for this address; try again later")
    if subscriber.state == UNSUBSCRIBED:
        subscriber = replace(subscriber, state=PENDING)
    subscriber = replace(subscriber, window_count=subscriber.window_count + 1)
    await store.save(conn, subscriber)
    payload = {"expires": now + settings.confirm_within, "components": components, **extra}
    confirmation = new_id(now)
    await delivery_store.add_deliveries(
        db,
        conn,
        [
            delivery_store.NewDelivery(
                confirmation,
                confirmation,
                0,
                subscriber.target,
                CONFIRM_KIND,
                delivery_store.PENDING,
                now,
                json.dumps(payload),
            )
        ],
        now,
    )
    await audit.append(
        conn,
        actor,
        "subscriber.requested",
        f"subscriber:{subscriber.id}",
        {"kind": subscriber.kind, "components": components},
        at=now,
    )


def _activated(subscriber: Subscriber, components: list[str], now: Millis) -> Subscriber:
    """Receiving updates for `components` from now on (confirmed the first time only)."""
    return replace(
        subscriber,
        components=components,
        state=ACTIVE,
        confirmed_at=subscriber.confirmed_at or now,
        unsubscribed_at=None,
    )


async def confirm(
    conn: AsyncConnection,
    subscriber_id: str,
    expires: Millis,
    components: list[str],
    token: str,
    key: bytes,
    actor: str,
    now: Millis,
    confirm_within: Millis,
) -> Subscriber:
    """Follow a confirmation link. A link sent before the subscriber last unsubscribed is void
    (it was sent `confirm_within` before it expires)."""
    if not links.valid(key, token, *links.confirm_parts(subscriber_id, expires, components)):
        raise SubscribeError(403, "this confirmation link is not valid")
    if now > expires:
        raise SubscribeError(410, "this confirmation link has expired; subscribe again")
    subscriber = await store.get(conn, subscriber_id)
    if subscriber is None:
        raise SubscribeError(404, "no such subscription")
    left = subscriber.unsubscribed_at
    if left is not None and expires - confirm_within <= left:
        raise SubscribeError(410, "you unsubscribed after this link was sent; subscribe again")
    confirmed = _activated(subscriber, components, now)
    await store.save(conn, confirmed)
    await audit.append(
        conn,
        actor,
        "subscriber.confirmed",
        f"subscriber:{subscriber.id}",
        {"components": components},
        at=now,
    )
    return confirmed


async def unsubscribe(
    conn: AsyncConnection, subscriber_id: str, token: str, key: bytes, actor: str, now: Millis
) -> Subscriber:
    if not links.valid(key, token, *links.unsubscribe_parts(subscriber_id)):
        raise SubscribeError(403, "this unsubscribe link is not valid")
    subscriber = await store.get(conn, subscriber_id)
    if subscriber is None:
        raise SubscribeError(404, "no such subscription")
    if subscriber.state == UNSUBSCRIBED:
        return subscriber
    return await remove(conn, subscriber, actor, now)


async def remove(
    conn: AsyncConnection, subscriber: Subscriber, actor: str, now: Millis
) -> Subscriber:
    gone = replace(subscriber, state=UNSUBSCRIBED, unsubscribed_at=now)
    await store.save(conn, gone)
    await delivery_store.cancel_pending(conn, subscriber.target, "unsubscribed")
    await audit.append(
        conn, actor, "subscriber.unsubscribed", f"subscriber:{subscriber.id}", {}, at=now
    )
    return gone
