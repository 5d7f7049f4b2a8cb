"""The second factor: TOTP codes (RFC 6238, `pyotp`) and one-time recovery codes.

A TOTP secret is stored sealed with the secret key when one is set (AES-256-GCM, bound to the
user), else as is; recovery codes are stored as SHA-256 digests and work once each.
"""

from __future__ import annotations

import hashlib
import secrets

import pyotp
from sqlalchemy.ext.asyncio import AsyncConnection

from uptally.clock import Millis
from uptally.secrets import Keyring, is_sealed_text
from uptally.store import accounts as store
from uptally.store.accounts import UserRow

RECOVERY_CODES = 10


def new_secret() -> str:
    return pyotp.random_base32()


def provisioning_uri(secret: str, email: str, issuer: str) -> str:
    """The otpauth:// URI an authenticator app reads (shown as a QR code or typed in)."""
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=issuer)


def _aad(user_id: str) -> str:
    return f"totp:{user_id}"


def sealed(secret: str, user_id: str, keyring: Keyring | None) -> str:
    return keyring.seal_text(secret, _aad(user_id)) if keyring else secret


def secret_of(user: UserRow, keyring: Keyring | None) -> str | None:
    stored = user.totp_secret
    if stored is None:
        return None
    if is_sealed_text(stored):
        if keyring is None:
            raise RuntimeError("this user's TOTP secret is sealed: UPTALLY_SECRET_KEY is needed")
        return keyring.open_text(stored, _aad(user.id))
    return stored


def code_matches(secret: str, code: str, now: Millis) -> bool:
    """A 6-digit code of this 30 s step or its neighbours (clock drift of a phone)."""
    digits = "".join(code.split())
    if len(digits) != 6 or not digits.isdigit():
        return False
    return bool(pyotp.TOTP(secret).verify(digits, for_time=now // 1000, valid_window=1))


def _digest(code: str) -> str:
    return hashlib.sha256("".join(code.lower().split()).replace("-", "").encode()).hexdigest()


def new_recovery_codes() -> list[str]:
    """Ten codes like `7f3k-q9x2-mw4p`, shown once."""
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
    return [
        "-".join("".join(secrets.choice(alphabet) for _ in range(4)) for _ in range(3))
        for _ in range(RECOVERY_CODES)
    ]


async def store_recovery_codes(
    conn: AsyncConnection, user: UserRow, codes: list[str], now: Millis
) -> None:
    await store.replace_recovery_codes(conn, user.id, [_digest(c) for c in codes], now)


async def second_factor_ok(
    conn: AsyncConnection, user: UserRow, code: str, keyring: Keyring | None, now: Millis
) -> str | None:
    """How a second factor was given ("totp" or "recovery_code"), or None if `code` is neither
    a current TOTP code nor an unused recovery code."""
    secret = secret_of(user, keyring)
    if secret is not None and code_matches(secret, code, now):
        return "totp"
    if code.strip() and await store.use_recovery_code(conn, user.id, _digest(code), now):
        return "recovery_code"
    return None
