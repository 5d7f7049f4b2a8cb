"""Signed links for subscribers: confirm (expires, names the components) and unsubscribe.

A link carries an HMAC-SHA256 of its parameters under the site's link key, so it cannot be
forged or altered, and nothing about it needs to be stored.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from urllib.parse import urlencode

from uptally.clock import Millis

CONFIRM_PATH = "/subscribe/confirm"
UNSUBSCRIBE_PATH = "/subscribe/unsubscribe"


def sign(key: bytes, *parts: str) -> str:
    mac = hmac.new(key, "\x1f".join(parts).encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:24]).decode().rstrip("=")


def valid(key: bytes, token: str, *parts: str) -> bool:
    return hmac.compare_digest(sign(key, *parts).encode(), token.encode())


def confirm_parts(subscriber: str, expires: Millis, components: Sequence[str]) -> tuple[str, ...]:
    return ("confirm", subscriber, str(expires), ",".join(components))


def unsubscribe_parts(subscriber: str) -> tuple[str, ...]:
    return ("unsubscribe", subscriber)


def confirm_url(
    base: str, key: bytes, subscriber: str, expires: Millis, components: Sequence[str]
) -> str:
    token = sign(key, *confirm_parts(subscriber, expires, components))
    query = {"s": subscriber, "e": str(expires), "c": ",".join(components), "t": token}
    return f"{base}{CONFIRM_PATH}?{urlencode(query)}"


def unsubscribe_url(base: str, key: bytes, subscriber: str) -> str:
    token = sign(key, *unsubscribe_parts(subscriber))
    return f"{base}{UNSUBSCRIBE_PATH}?{urlencode({'s': subscriber, 't': token})}"
