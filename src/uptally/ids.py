"""Identifiers: time-ordered random ids for results, outages and events."""

from __future__ import annotations

import os
import secrets
import time


def new_id(at_ms: int | None = None) -> str:
    """A 26-character id, sortable by creation time (48-bit ms prefix + 80 random bits)."""
    ms = time.time_ns() // 1_000_000 if at_ms is None else at_ms
    return f"{ms:012x}{os.urandom(7).hex()}"


def new_token(nbytes: int = 18) -> str:
    return secrets.token_urlsafe(nbytes)
