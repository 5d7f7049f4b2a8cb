"""Signed anchors: `SEQ:HASH:SIGNATURE` made with an Ed25519 key derived from the instance key.

An anchor kept elsewhere (a ticket, a wiki, another host) catches a database rewritten
consistently; its signature proves that this instance made it, so whoever can edit the place
it is kept cannot forge a matching one without `UPTALLY_SECRET_KEY`. The signing key is derived
from the secret key with HKDF, so nothing more is stored; the public key
(`uptally audit anchor --public-key`) lets anyone check an anchor without the secret.
"""

from __future__ import annotations

import base64
import binascii

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from uptally.audit.chain import Anchor
from uptally.secrets import Key, Keyring

_INFO = b"uptally audit anchor signing v1"


def _private(key: Key) -> Ed25519PrivateKey:
    seed = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_INFO).derive(key.material)
    return Ed25519PrivateKey.from_private_bytes(seed)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    try:
        return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError):
        raise ValueError(f"not base64url: {text!r}") from None


def _message(anchor: Anchor) -> bytes:
    return f"uptally-audit-anchor:v1:{anchor.seq}:{anchor.hash}".encode()


def public_key(ring: Keyring) -> str:
    """The current key's public half, base64url (raw 32 bytes)."""
    return _b64(_private(ring.current).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))


def sign(anchor: Anchor, ring: Keyring) -> Anchor:
    signature = _private(ring.current).sign(_message(anchor))
    return Anchor(anchor.seq, anchor.hash, _b64(signature))


def check(anchor: Anchor, public_keys: list[str]) -> None:
    """Raise ValueError unless one of the public keys made the anchor's signature."""
    if anchor.signature is None:
        return
    signature = _unb64(anchor.signature)
    for text in public_keys:
        try:
            Ed25519PublicKey.from_public_bytes(_unb64(text)).verify(signature, _message(anchor))
            return
        except (InvalidSignature, ValueError):
            continue
    raise ValueError(
        f"the anchor {anchor.seq}:{anchor.hash[:12]}… has a signature this instance's key did "
        "not make: forged, or signed by another key"
    )


def known_public_keys(ring: Keyring) -> list[str]:
    """Public keys of the current and the previous secret keys (anchors outlive rotations)."""
    return [
        _b64(_private(key).public_key().public_bytes(Encoding.Raw, PublicFormat.Raw))
        for key in ring.keys
    ]
