"""The second factor: TOTP codes (RFC 6238, `pyotp`) and one-time recovery codes; enabling and
disabling it (audit-logged).

A TOTP secret is stored sealed with the secret key when one is set (AES-256-GCM, bound to the
user), else as is; recovery codes are stored as SHA-256 digests and work once each. A TOTP code
works once too: the 30 s step of the last code used is stored, and a code of that step or an
earlier one is refused (a code seen over a shoulder or in a proxy log cannot be replayed).
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets

import pyotp
from sqlalchemy.ext.asyncio import AsyncConnection

from uptally import audit
from uptally.clock import Millis
from uptally.config.console import Console
from uptally.secrets import Keyring, is_sealed_text
from uptally.store import accounts as store
from uptally.store.accounts import UserRow

RECOVERY_CODES = 10
_SECRET_RE = re.compile(r"^[A-Z2-7]{32}$")  # what new_secret() makes: 160 bits, base32


def new_secret() -> str:
    return pyotp.random_base32()


def is_secret(text: str) -> bool:
    """Whether `text` looks like a secret new_secret() made (an enrolment form carries it)."""
    return bool(_SECRET_RE.match(text))


def enrolment_owed(user: UserRow, settings: Console) -> bool:
    """`console.require_totp` is on and this password user has not set up TOTP yet (users of
    single sign-on only give their second factor at the provider)."""
    return settings.require_totp and user.password_hash is not None and user.totp_enabled_at is None


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


def matching_step(secret: str, code: str, now: Millis) -> int | None:
    """The 30 s step whose 6-digit code `code` is: this step or a neighbour (clock drift of a
    phone); None if none."""
    digits = "".join(code.split())
    if len(digits) != 6 or not digits.isdigit():
        return None
    otp = pyotp.TOTP(secret)
    current = otp.timecode(now // 1000)
    for step in (current - 1, current, current + 1):
        if hmac.compare_digest(digits, otp.generate_otp(step)):
            return step
    return None


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


async def renew_recovery_codes(
    conn: AsyncConnection, user: UserRow, actor: str, now: Millis
) -> list[str]:
    """New recovery codes in place of the old ones (audit-logged), to be shown once."""
    codes = new_recovery_codes()
    await store_recovery_codes(conn, user, codes, now)
    await audit.append(conn, actor, "user.recovery_codes_renewed", f"user:{user.email}", {}, at=now)
    return codes


async def second_factor_ok(
    conn: AsyncConnection, user: UserRow, code: str, keyring: Keyring | None, now: Millis
) -> str | None:
    """How a second factor was given ("totp" or "recovery_code"), or None if `code` is neither
    a current TOTP code nor an unused recovery code."""
    secret = secret_of(user, keyring) if user.totp_enabled_at is not None else None
    step = matching_step(secret, code, now) if secret is not None else None
    if step is not None and await store.use_totp_step(conn, user.id, step):
        return "totp"
    if code.strip() and await store.use_recovery_code(conn, user.id, _digest(code), now):
        return "recovery_code"
    return None


async def enable(
    conn: AsyncConnection,
    user: UserRow,
    secret: str,
    step: int,
    keyring: Keyring | None,
    actor: str,
    now: Millis,
) -> list[str]:
    """Turn TOTP on with a secret the user has proven (a code of `step`, which is then used);
    the new recovery codes, to be shown once."""
    await store.update_user(
        conn,
        user.id,
        totp_secret=sealed(secret, user.id, keyring),
        totp_enabled_at=now,
        totp_last_step=step,
    )
    codes = new_recovery_codes()
    await store_recovery_codes(conn, user, codes, now)
    await audit.append(
        conn, actor, "user.totp_enabled", f"user:{user.email}", {"sealed": bool(keyring)}, at=now
    )
    return codes


async def disable(
    conn: AsyncConnection, user: UserRow, actor: str, now: Millis, *, keep_codes: bool
) -> None:
    """Turn TOTP off; the recovery codes go too unless another factor (a passkey) keeps them."""
    await store.update_user(
        conn, user.id, totp_secret=None, totp_enabled_at=None, totp_last_step=None
    )
    if not keep_codes:
        await store.replace_recovery_codes(conn, user.id, [], now)
    await audit.append(conn, actor, "user.totp_disabled", f"user:{user.email}", {}, at=now)


async def reset(conn: AsyncConnection, user: UserRow, actor: str, now: Millis) -> int:
    """An admin's way back in for a user who lost every factor: the authenticator app, the
    passkeys and the recovery codes go, and every session ends (audit-logged). How many
    sessions ended."""
    await store.update_user(
        conn, user.id, totp_secret=None, totp_enabled_at=None, totp_last_step=None
    )
    await store.replace_recovery_codes(conn, user.id, [], now)
    passkeys = await store.delete_passkeys(conn, user.id)
    ended = await store.revoke_sessions(conn, user.id, now)
    details = {"passkeys": passkeys, "sessions_ended": ended}
    await audit.append(
        conn, actor, "user.second_factors_reset", f"user:{user.email}", details, at=now
    )
    return ended
