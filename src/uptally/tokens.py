"""Scoped API tokens: issue, authenticate (constant-time), revoke; who acted, for the audit log.

A token reads `ut_<id>_<secret>`: the id finds the row, only a SHA-256 of the secret is stored
(the secret is 256 random bits, so a fast hash is enough) and compared in constant time.
Scopes: `read` ⊂ `respond` ⊂ `write` ⊂ `admin`, and `page:<id>` (reading one private status page).

Whoever acts is a `Principal`: a token, the bootstrap token (UPTALLY_ADMIN_TOKEN), the system
or a CLI user; operator accounts (argon2 passwords, TOTP) will be one more kind, carrying
scopes the same way, so authorisation and the audit log need no change for them.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from enum import StrEnum

from sqlalchemy.ext.asyncio import AsyncConnection

from uptally import audit
from uptally.clock import Millis
from uptally.ids import token_bits
from uptally.store import tokens as store
from uptally.store.tokens import TokenRow

PREFIX = "ut"
LEVELS = ("read", "respond", "write", "admin")
_SCOPE_RE = re.compile(r"^(read|respond|write|admin|page:[A-Za-z0-9][A-Za-z0-9_.\-]{0,63})$")
_TOKEN_RE = re.compile(r"^ut_([0-9a-f]{12})_([A-Za-z0-9_\-]{43})$")
TOUCH_EVERY_MS = 60_000  # last-used is written at most this often per token


class Kind(StrEnum):
    TOKEN = "token"
    BOOTSTRAP = "bootstrap"
    OPERATOR = "operator"
    SYSTEM = "system"
    CLI = "cli"


@dataclass(frozen=True, slots=True)
class Principal:
    kind: Kind
    id: str
    scopes: frozenset[str]

    @property
    def actor(self) -> str:
        """How the audit log names this principal."""
        if self.kind is Kind.BOOTSTRAP:
            return "bootstrap-token"
        return f"{self.kind.value}:{self.id}"

    def allows(self, scope: str) -> bool:
        return allows(self.scopes, scope)


BOOTSTRAP = Principal(Kind.BOOTSTRAP, "UPTALLY_ADMIN_TOKEN", frozenset({"admin"}))


def allows(scopes: frozenset[str] | set[str], required: str) -> bool:
    """Whether granted scopes cover the required one (admin ⊃ write ⊃ respond ⊃ read ⊃
    page:<id>)."""
    if required in scopes:
        return True
    if required in LEVELS:
        rank = LEVELS.index(required)
        return any(scope in LEVELS and LEVELS.index(scope) >= rank for scope in scopes)
    if required.startswith("page:"):
        return bool(scopes & set(LEVELS))
    return False


def check_scopes(scopes: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Validated, de-duplicated scopes; ValueError naming a bad one."""
    if not scopes:
        raise ValueError(
            "a token needs at least one scope: read, respond, write, admin or page:<id>"
        )
    for scope in scopes:
        if not _SCOPE_RE.match(scope):
            raise ValueError(
                f"unknown scope {scope!r}: use read, respond, write, admin or page:<id>"
            )
    return tuple(dict.fromkeys(scopes))


BOOTSTRAP_MIN_CHARS = 16


def bootstrap_weakness(token: str) -> str | None:
    """Why a bootstrap token is too guessable to guard the admin scope, or None.

    Randomness cannot be measured from one value; length and `ids.token_bits` (patterns such as
    "aaaaaaaaaaaaaaaa" or "adminadminadmin!" count as nothing) catch the usual placeholders."""
    if len(token) < BOOTSTRAP_MIN_CHARS:
        return f"is {len(token)} characters long; use at least {BOOTSTRAP_MIN_CHARS} random ones"
    if token_bits(token) == 0:
        return "is a pattern (few different characters, or a repeated part); use random ones"
    return None


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def parse(token: str) -> tuple[str, str] | None:
    match = _TOKEN_RE.match(token)
    return (match[1], match[2]) if match else None


@dataclass(frozen=True, slots=True)
class Issued:
    token: str  # shown once, never stored
    row: TokenRow


async def create(
    conn: AsyncConnection,
    name: str,
    scopes: list[str] | tuple[str, ...],
    actor: str,
    now: Millis,
    expires_at: Millis | None = None,
) -> Issued:
    """Store a new token and audit-log it, in the caller's transaction."""
    name = name.strip()
    if not name or len(name) > 128:
        raise ValueError("a token name is 1 to 128 characters")
    valid = check_scopes(scopes)
    if expires_at is not None and expires_at <= now:
        raise ValueError("the expiry must lie in the future")
    token_id = secrets.token_hex(6)
    secret = secrets.token_urlsafe(32)
    row = TokenRow(token_id, name, valid, hash_secret(secret), now, actor, expires_at)
    await store.insert_token(conn, row)
    await audit.append(
        conn,
        actor,
        "token.created",
        f"token:{token_id}",
        {"name": name, "scopes": list(valid), "expires_at": expires_at},
        at=now,
    )
    return Issued(f"{PREFIX}_{token_id}_{secret}", row)


async def listed(conn: AsyncConnection) -> list[TokenRow]:
    """Every token, revoked and expired ones too (their hashes never leave this package's
    callers: views show names, scopes and dates)."""
    return await store.list_tokens(conn)


async def revoke(conn: AsyncConnection, token_id: str, actor: str, now: Millis) -> TokenRow | None:
    """Revoke a token (audit-logged); None if unknown. Revoking twice changes nothing."""
    row = await store.get_token(conn, token_id)
    if row is None:
        return None
    if await store.revoke(conn, token_id, now, actor):
        await audit.append(
            conn, actor, "token.revoked", f"token:{token_id}", {"name": row.name}, at=now
        )
    return await store.get_token(conn, token_id)


@dataclass(frozen=True, slots=True)
class Verdict:
    principal: Principal | None
    reason: str  # "ok", "malformed", "unknown", "mismatch", "revoked", "expired"
    needs_touch: bool = False


async def authenticate(conn: AsyncConnection, presented: str, now: Millis) -> Verdict:
    parsed = parse(presented)
    if parsed is None:
        return Verdict(None, "malformed")
    token_id, secret = parsed
    row = await store.get_token(conn, token_id)
    # Compare even for an unknown id, so timing does not tell which ids exist.
    expected = row.secret_hash if row else "0" * 64
    matches = hmac.compare_digest(hash_secret(secret), expected)
    if row is None:
        return Verdict(None, "unknown")
    if not matches:
        return Verdict(None, "mismatch")
    if row.revoked_at is not None:
        return Verdict(None, "revoked")
    if row.expires_at is not None and row.expires_at <= now:
        return Verdict(None, "expired")
    stale = row.last_used_at is None or now - row.last_used_at >= TOUCH_EVERY_MS
    return Verdict(Principal(Kind.TOKEN, row.id, frozenset(row.scopes)), "ok", stale)


async def touch(conn: AsyncConnection, token_id: str, now: Millis, ip: str | None) -> None:
    await store.touch(conn, token_id, now, ip)
