"""Identifiers: time-ordered random ids for results, outages and events; random tokens."""

from __future__ import annotations

import math
import os
import secrets
import string
import time

MIN_TOKEN_BITS = 128
GENERATE_TOKEN = "python -c 'import secrets; print(secrets.token_urlsafe(32))'"
_HEX = frozenset(string.hexdigits)
_BASE64 = frozenset(string.ascii_letters + string.digits + "-_+/=")
_MIN_DISTINCT = 8  # fewer different characters than this is a pattern, not randomness


def new_id(at_ms: int | None = None) -> str:
    """A 26-character id, sortable by creation time (48-bit ms prefix + 80 random bits)."""
    ms = time.time_ns() // 1_000_000 if at_ms is None else at_ms
    return f"{ms:012x}{os.urandom(7).hex()}"


def new_token(nbytes: int = 18) -> str:
    return secrets.token_urlsafe(nbytes)


def token_bits(token: str) -> float:
    """An upper estimate of a token's strength: its length times the bits per character of
    the smallest usual alphabet that holds it (hex 4, base64/base64url 6, printable ASCII 6.5).
    Patterns count as 0 (fewer than 8 different characters, or one part repeated)."""
    if len(set(token)) < _MIN_DISTINCT or token in (token + token)[1:-1]:
        return 0.0
    chars = set(token)
    if chars <= _HEX:
        per_char = 4.0
    elif chars <= _BASE64:
        per_char = 6.0
    else:
        per_char = math.log2(94)
    return len(token) * per_char


def weak_token(token: str, min_bits: int = MIN_TOKEN_BITS) -> str | None:
    """Why `token` is too weak to guard anything (None if it is strong enough)."""
    bits = token_bits(token)
    if bits >= min_bits:
        return None
    why = f"about {bits:.0f} bits" if bits else "a pattern, not random"
    return (
        f"the token is too weak ({why}; at least {min_bits} bits are needed: 22 or more random "
        f"base64url characters, or 32 hex); generate one with {GENERATE_TOKEN}"
    )
