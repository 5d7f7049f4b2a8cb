"""Targets of deliveries (`channel:<id>`, `subscriber:<id>`) resolved to their transports.

Resolved each time a queue is delivered, so config reloads and new secrets apply at once.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import aiohttp

from uptally.clock import Millis, iso
from uptally.config.schema import Channel, Config, SecretRef
from uptally.incidents.texts import format_time, join_names
from uptally.netguard import Guard
from uptally.notify import mail
from uptally.notify.apprise_channel import AppriseChannel
from uptally.notify.email import Mailer, SmtpSettings
from uptally.notify.transport import DeliveryError, Outgoing, Transport
from uptally.notify.webhook import PREFIX, Webhook
from uptally.secrets import Keyring, SecretKeyError
from uptally.signing import Scheme, Signer, check_secret
from uptally.store import channels as channel_store
from uptally.store import secrets as secret_store
from uptally.store import subscribers as subscriber_store
from uptally.store.database import Database
from uptally.subscribers import keys, links
from uptally.subscribers.service import CONFIRM_KIND

CHANNEL = "channel:"
SUBSCRIBER = "subscriber:"


class Unavailable(Exception):
    """The target cannot be delivered now (permanent: never, e.g. the channel was removed)."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


def label(target: str) -> str:
    """The metrics label: a channel's id; subscribers together as `subscribers`."""
    return target.removeprefix(CHANNEL) if target.startswith(CHANNEL) else "subscribers"


class Resolver:
    def __init__(
        self,
        db: Database,
        config: Callable[[], Config],
        keyring: Callable[[], Keyring | None],
        session: Callable[[Guard | None], aiohttp.ClientSession],
        clock_now: Callable[[], Millis],
    ) -> None:
        self.db = db
        self.config = config
        self.keyring = keyring
        self.session = session
        self.now = clock_now
        self._mailer: tuple[SmtpSettings, Mailer] | None = None
        self._link_key: bytes | None = None

    async def resolve(self, target: str) -> Transport:
        config = self.config()
        timeout_s = config.notifications.timeout / 1000
        if target.startswith(CHANNEL):
            url, signer, provisioned = await self._channel(target.removeprefix(CHANNEL), config)
            # the config file's channels are the operator's own; API-made ones are guarded
            guard = None if provisioned or not config.security.ssrf_guard else config.security.guard
            if url.lower().startswith(PREFIX):
                return Webhook(self.session(guard), url, signer, timeout_s)
            return AppriseChannel(url, timeout_s, guard)
        if target.startswith(SUBSCRIBER):
            async with self.db.connect() as conn:
                found = await subscriber_store.get(conn, target.removeprefix(SUBSCRIBER))
            if found is None or found.state == subscriber_store.UNSUBSCRIBED:
                raise Unavailable("unsubscribed", permanent=True)
            if found.kind == "webhook":
                private = config.notifications.subscribers.allow_private_webhooks
                guard = None if private else config.security.guard
                signer = await self.subscriber_signer(found)
                hook = Webhook(self.session(guard), found.address, signer, timeout_s)
                return SubscriberWebhook(self, found.id, hook)
            return SubscriberMail(self, found.id, found.address)
        raise Unavailable(f"unknown target {target}", permanent=True)

    async def _channel(self, channel_id: str, config: Config) -> tuple[str, Signer, bool]:
        """The channel's URL and signer, and whether the config file provisions it."""
        configured = next((c for c in config.notifications.channels if c.id == channel_id), None)
        if configured is not None:
            return (*await self._configured(configured), True)
        async with self.db.connect() as conn:
            stored = next(
                (c for c in await channel_store.load_channels(conn) if c.id == channel_id), None
            )
        if stored is None:
            raise Unavailable("the channel was removed", permanent=True)
        keyring = self.keyring()
        if keyring is None:
            raise Unavailable("UPTALLY_SECRET_KEY is needed to open the channel", permanent=False)
        try:
            url, secret = stored.opened(keyring)
            previous = stored.opened_previous(keyring)
        except SecretKeyError as error:
            raise Unavailable(str(error), permanent=False) from None
        return url, _signer(Scheme(stored.signing), secret, previous), False

    async def _configured(self, channel: Channel) -> tuple[str, Signer]:
        url = await self.secret_value(channel.url)
        secret = await self.secret_value(channel.secret)
        previous = await self.secret_value(channel.previous_secret)
        assert url is not None
        return url, _signer(channel.signing, secret, previous)

    async def subscriber_signer(self, subscriber: subscriber_store.Subscriber) -> Signer:
        """Unsigned as before, or Standard Webhooks under the subscriber's own secret."""
        if subscriber.signing != Scheme.STANDARD:
            return Signer()
        secret = keys.webhook_secret(await self.link_key(), subscriber.id)
        return Signer(Scheme.STANDARD, (secret,))

    async def secret_value(self, value: str | SecretRef | None) -> str | None:
        if value is None or isinstance(value, str):
            return value
        keyring = self.keyring()
        if keyring is None:
            raise Unavailable(f"secret {value.secret!r} needs UPTALLY_SECRET_KEY", permanent=False)
        async with self.db.connect() as conn:
            try:
                found = await secret_store.get_secret(conn, keyring, value.secret)
            except SecretKeyError as error:
                raise Unavailable(str(error), permanent=False) from None
        if found is None:
            raise Unavailable(f"secret {value.secret!r} is not set", permanent=False)
        return found

    async def mailer(self) -> Mailer:
        smtp = self.config().notifications.smtp
        if smtp is None:
            raise DeliveryError("notifications.smtp is not configured")
        settings = SmtpSettings(
            smtp.host,
            smtp.port,
            smtp.security,
            smtp.username,
            await self.secret_value(smtp.password),
            smtp.sender,
            smtp.timeout / 1000,
            smtp.verify_tls,
        )
        if self._mailer is None or self._mailer[0] != settings:
            self._mailer = (settings, Mailer(settings, smtp.concurrency))
        return self._mailer[1]

    async def link_key(self) -> bytes:
        """The key that signs subscriber links (made on first use, then kept)."""
        if self._link_key is None:
            async with self.db.begin() as conn:
                self._link_key = await keys.link_key(self.db, conn, self.keyring(), self.now())
        return self._link_key


def _signer(scheme: Scheme, secret: str | None, previous: str | None) -> Signer:
    """The current secret first, then the previous one while it is kept (rotation)."""
    chosen = tuple(s for s in (secret, previous) if s)
    for value in chosen:
        try:
            check_secret(scheme, value)
        except ValueError as error:  # a secret from the store is checked here, when used
            raise Unavailable(str(error), permanent=False) from None
    return Signer(scheme, chosen)


class SubscriberWebhook:
    """A subscriber's webhook: a confirmation carries its confirm and unsubscribe links (the
    webhook's owner is the one who may have them)."""

    def __init__(self, resolver: Resolver, subscriber: str, hook: Webhook) -> None:
        self.resolver = resolver
        self.subscriber = subscriber
        self.hook = hook

    async def send(self, outgoing: Outgoing) -> int | None:
        if outgoing.kind != CONFIRM_KIND:
            return await self.hook.send(outgoing)
        base = self.resolver.config().site.url or str(outgoing.data.get("base") or "")
        key = await self.resolver.link_key()
        expires = int(outgoing.data.get("expires") or 0)
        components = [str(c) for c in outgoing.data.get("components") or ()]
        data = {
            "expires": iso(expires),
            "components": components,
            "confirm_url": links.confirm_url(base, key, self.subscriber, expires, components),
            "unsubscribe_url": links.unsubscribe_url(base, key, self.subscriber),
        }
        return await self.hook.send(replace(outgoing, data=data))


class SubscriberMail:
    """A subscriber's mail: the confirmation, or a notice with its unsubscribe link."""

    def __init__(self, resolver: Resolver, subscriber: str, address: str) -> None:
        self.resolver = resolver
        self.subscriber = subscriber
        self.address = address

    async def send(self, outgoing: Outgoing) -> int | None:
        config = self.resolver.config()
        base = config.site.url
        if not base:
            raise DeliveryError("site.url must be set for links in subscriber mail")
        try:
            mailer = await self.resolver.mailer()
        except Unavailable as error:
            raise DeliveryError(str(error)) from None
        key = await self.resolver.link_key()
        site = config.site.title
        unsubscribe = links.unsubscribe_url(base, key, self.subscriber)
        if outgoing.kind == CONFIRM_KIND:
            expires = int(outgoing.data.get("expires") or 0)
            components = [str(c) for c in outgoing.data.get("components") or ()]
            names = {c.id: c.title for c in config.components}
            message = mail.confirmation(
                self.address,
                site,
                links.confirm_url(base, key, self.subscriber, expires, components),
                join_names([names.get(c, c) for c in components]),
                format_time(expires, config.site.timezone) if expires else iso(expires) or "",
                outgoing.delivery,
                unsubscribe,
            )
        else:
            message = mail.notice(
                self.address, site, outgoing.message, unsubscribe, outgoing.delivery
            )
        return await mailer.send(message)
