"""How webhook deliveries are signed: uptally's X-Uptally-* scheme or Standard Webhooks.

`uptally`: `X-Uptally-Signature: sha256=<hex HMAC-SHA256 of "<timestamp>.<body>">` under the
secret's bytes. `standard` (standardwebhooks.com): `webhook-id`, `webhook-timestamp` and
`webhook-signature: v1,<base64 HMAC-SHA256 of "<id>.<timestamp>.<body>">` under the key
base64-encoded in a `whsec_…` secret. While a previous secret is kept (rotation), every
delivery carries one signature per secret, the current one first, separated by a space.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

WHSEC = "whsec_"
MIN_KEY_BYTES = 24  # the spec asks for 24 to 64 random bytes
MAX_KEY_BYTES = 64


class Scheme(StrEnum):
    UPTALLY = "uptally"
    STANDARD = "standard"


def generate_secret() -> str:
    """A fresh Standard Webhooks secret: `whsec_` and 32 random bytes in base64."""
    return WHSEC + base64.b64encode(secrets.token_bytes(32)).decode()


def whsec_key(secret: str) -> bytes:
    """The key of a `whsec_…` secret; ValueError saying what is wrong otherwise."""
    if not secret.startswith(WHSEC):
        raise ValueError(
            "signing: standard needs a secret of the form whsec_<base64 of 24 to 64 random "
            "bytes> (make one with `uptally secrets webhook-secret`)"
        )
    encoded = secret.removeprefix(WHSEC)
    try:  # some senders leave out the base64 padding
        key = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("the part after whsec_ is not valid base64") from None
    if not MIN_KEY_BYTES <= len(key) <= MAX_KEY_BYTES:
        raise ValueError(f"a whsec_ secret must hold 24 to 64 bytes, not {len(key)}")
    return key


def check_secret(scheme: Scheme, secret: str | None) -> None:
    """ValueError unless the secret suits the scheme (any text for uptally, whsec_ else)."""
    if scheme is Scheme.STANDARD and secret is not None:
        whsec_key(secret)


@dataclass(frozen=True, slots=True)
class Signer:
    """Signs a delivery; `secrets` is the current secret, then the previous one (rotation)."""

    scheme: Scheme = Scheme.UPTALLY
    secrets: Sequence[str] = ()

    def headers(self, delivery: str, kind: str, body: bytes, now_s: int) -> dict[str, str]:
        timestamp = str(now_s)
        if self.scheme is Scheme.STANDARD:
            headers = {
                "X-Uptally-Event": kind,
                "webhook-id": delivery,
                "webhook-timestamp": timestamp,
            }
            if self.secrets:
                signed = f"{delivery}.{timestamp}.".encode() + body
                headers["webhook-signature"] = " ".join(
                    "v1," + base64.b64encode(_mac(whsec_key(s), signed)).decode()
                    for s in self.secrets
                )
            return headers
        headers = {
            "X-Uptally-Event": kind,
            "X-Uptally-Delivery": delivery,
            "X-Uptally-Timestamp": timestamp,
        }
        if self.secrets:
            signed = timestamp.encode() + b"." + body
            headers["X-Uptally-Signature"] = " ".join(
                "sha256=" + _mac(s.encode(), signed).hex() for s in self.secrets
            )
        return headers


def _mac(key: bytes, message: bytes) -> bytes:
    return hmac.new(key, message, hashlib.sha256).digest()
