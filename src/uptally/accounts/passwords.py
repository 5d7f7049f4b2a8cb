"""Passwords: argon2id hashes, and the rules a new password must meet (length, not breached)."""

from __future__ import annotations

from functools import cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MAX_LENGTH = 1024  # argon2 takes any length; this bounds the work a request can ask for

_hasher = PasswordHasher()  # argon2id with the library's current recommended parameters
# Verified against when an account is unknown, so the answer takes as long either way.
_DUMMY = _hasher.hash("uptally-no-such-user")


@cache
def _breached() -> frozenset[str]:
    """Common passwords from public breaches: zxcvbn's list (30,000, from leaked dumps)."""
    from zxcvbn.frequency_lists import FREQUENCY_LISTS

    return frozenset(FREQUENCY_LISTS["passwords"])


def problems(password: str, email: str, min_length: int) -> list[str]:
    """Why a new password is refused (empty: acceptable)."""
    found = []
    if len(password) < min_length:
        found.append(f"a password needs at least {min_length} characters")
    if len(password) > MAX_LENGTH:
        found.append(f"a password has at most {MAX_LENGTH} characters")
    lowered = password.lower()
    if lowered in _breached():
        found.append("this password appears in lists of breached passwords; choose another")
    if email and lowered in {email.lower(), email.lower().partition("@")[0]}:
        found.append("the password must not be the e-mail address")
    return found


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify(stored: str | None, password: str) -> bool:
    """Whether `password` matches; costs one argon2 verification even without a stored hash."""
    if len(password) > MAX_LENGTH:
        return False
    try:
        return _hasher.verify(stored or _DUMMY, password) and stored is not None
    except (VerificationError, InvalidHashError):
        return False


def needs_rehash(stored: str) -> bool:
    return _hasher.check_needs_rehash(stored)
