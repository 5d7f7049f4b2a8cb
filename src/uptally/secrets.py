"""Secrets at rest: AES-256-GCM keys from UPTALLY_SECRET_KEY (or a key file), with key ids.

A key is 32 bytes. `UPTALLY_SECRET_KEY` holds either 32 random bytes in base64 (preferred:
`python -c 'import os,base64;print(base64.b64encode(os.urandom(32)).decode())'`) or any other
text, which is taken as a passphrase and stretched with scrypt. The scrypt salt is random per
installation (kept in the database, and in each encrypted backup's manifest beside its key id),
so one passphrase gives different keys on different installations and a precomputed table
does not fit all of them; keys stretched with the fixed salt of earlier versions still decrypt
(`uptally secrets rotate` re-encrypts under the salted key). `UPTALLY_SECRET_KEY_FILE` names
a file holding such a key instead. Older keys that may still have encrypted something go in
`UPTALLY_SECRET_KEY_PREVIOUS` (comma-separated) or on the key file's further lines: they
decrypt, only the current key encrypts, and `uptally secrets rotate` re-encrypts everything
under the current one.

Each key has an id (the first 16 hex digits of a SHA-256 of the key), stored beside every
ciphertext so the right key is found and a rotation knows what is left to re-encrypt.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

KEY_ENV = "UPTALLY_SECRET_KEY"
KEY_FILE_ENV = "UPTALLY_SECRET_KEY_FILE"
PREVIOUS_ENV = "UPTALLY_SECRET_KEY_PREVIOUS"
NONCE_BYTES = 12
TAG_BYTES = 16
_SCRYPT_SALT = b"uptally secret key v1"
_TEXT_PREFIX = "enc:v1:"


class SecretKeyError(ValueError):
    """No usable key: missing, malformed, or not the one a ciphertext was made with."""


@dataclass(frozen=True, slots=True)
class Key:
    id: str
    material: bytes
    passphrase: str | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_bytes(cls, material: bytes) -> Key:
        if len(material) != 32:
            raise SecretKeyError("an AES-256 key is 32 bytes")
        digest = hashlib.sha256(b"uptally key id\x00" + material).hexdigest()
        return cls(digest[:16], material)

    @classmethod
    def parse(cls, text: str) -> Key:
        """32 bytes in base64, or a passphrase (stretched with scrypt)."""
        text = text.strip()
        if not text:
            raise SecretKeyError("the secret key is empty")
        try:
            raw = base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raw = b""
        if len(raw) == 32:
            return cls.from_bytes(raw)
        if len(text) < 12:
            raise SecretKeyError(
                "the secret key must be 32 bytes in base64 or a passphrase of 12+ characters"
            )
        return cls.stretched(text)

    @classmethod
    def stretched(cls, passphrase: str, salt: bytes = b"") -> Key:
        """A passphrase stretched with scrypt; no `salt` is the fixed one of earlier versions."""
        material = hashlib.scrypt(
            passphrase.encode(),
            salt=_SCRYPT_SALT + salt,
            n=1 << 15,
            r=8,
            p=1,
            maxmem=64 << 20,
            dklen=32,
        )
        key = cls.from_bytes(material)
        return cls(key.id, key.material, passphrase)


@dataclass(frozen=True, slots=True)
class Sealed:
    key_id: str
    blob: bytes  # nonce + ciphertext + tag


class Keyring:
    """The current key (encrypts) and older ones (decrypt only)."""

    def __init__(
        self, current: Key, previous: tuple[Key, ...] = (), salt: bytes | None = None
    ) -> None:
        self.current = current
        self._keys = {key.id: key for key in (*previous, current)}
        self.salt = salt  # the installation's scrypt salt, once known (with_salt)

    def with_salt(self, salt: bytes) -> Keyring:
        """Passphrase keys stretched with the installation's salt; the current one encrypts.
        Their fixed-salt versions stay, to decrypt what earlier versions encrypted."""
        if self.salt == salt:
            return self

        def salted(key: Key) -> Key:
            return Key.stretched(key.passphrase, salt) if key.passphrase else key

        previous = (*(salted(key) for key in self.keys[1:]), *self.keys)
        return Keyring(salted(self.current), previous, salt)

    @property
    def key_ids(self) -> list[str]:
        return list(self._keys)

    @property
    def keys(self) -> list[Key]:
        """Every key, the current one first."""
        return [self.current, *(key for key in self._keys.values() if key is not self.current)]

    def key(self, key_id: str) -> Key:
        try:
            return self._keys[key_id]
        except KeyError:
            raise SecretKeyError(
                f"encrypted with key {key_id}, which is not configured "
                f"({KEY_ENV}, {KEY_FILE_ENV} or {PREVIOUS_ENV})"
            ) from None

    def seal(self, plaintext: bytes, aad: bytes = b"") -> Sealed:
        """Encrypt with the current key; `aad` (e.g. the secret's name) must match to open."""
        nonce = os.urandom(NONCE_BYTES)
        blob = nonce + AESGCM(self.current.material).encrypt(nonce, plaintext, aad)
        return Sealed(self.current.id, blob)

    def open(self, sealed: Sealed, aad: bytes = b"") -> bytes:
        key = self.key(sealed.key_id)
        nonce, body = sealed.blob[:NONCE_BYTES], sealed.blob[NONCE_BYTES:]
        try:
            return AESGCM(key.material).decrypt(nonce, body, aad)
        except InvalidTag:
            raise SecretKeyError(
                "cannot decrypt: the ciphertext was altered or belongs elsewhere"
            ) from None

    def seal_text(self, plaintext: str, aad: str = "") -> str:
        """A self-describing string for an encrypted column: `enc:v1:<key id>:<base64>`."""
        sealed = self.seal(plaintext.encode(), aad.encode())
        return f"{_TEXT_PREFIX}{sealed.key_id}:{base64.b64encode(sealed.blob).decode()}"

    def open_text(self, text: str, aad: str = "") -> str:
        return self.open(parse_sealed_text(text), aad.encode()).decode()


def parse_sealed_text(text: str) -> Sealed:
    if not text.startswith(_TEXT_PREFIX):
        raise SecretKeyError("not an encrypted value")
    key_id, _, encoded = text[len(_TEXT_PREFIX) :].partition(":")
    try:
        return Sealed(key_id, base64.b64decode(encoded, validate=True))
    except (binascii.Error, ValueError):
        raise SecretKeyError("a damaged encrypted value") from None


def is_sealed_text(text: str) -> bool:
    return text.startswith(_TEXT_PREFIX)


def load_keyring(environ: Mapping[str, str] | None = None) -> Keyring | None:
    """The keyring configured in the environment, or None when no key is set."""
    env = os.environ if environ is None else environ
    lines: list[str] = []
    if env.get(KEY_ENV):
        lines.append(env[KEY_ENV])
    elif env.get(KEY_FILE_ENV):
        path = Path(env[KEY_FILE_ENV])
        try:
            content = path.read_text(encoding="utf-8")
        except OSError as error:
            raise SecretKeyError(f"cannot read {KEY_FILE_ENV} {path}: {error.strerror}") from None
        lines.extend(line for line in content.splitlines() if line.strip())
        if not lines:
            raise SecretKeyError(f"{KEY_FILE_ENV} {path} holds no key")
    if not lines:
        return None
    lines.extend(part for part in env.get(PREVIOUS_ENV, "").split(",") if part.strip())
    keys = [Key.parse(line) for line in lines]
    return Keyring(keys[0], tuple(keys[1:]))
