"""JSON shapes of the trust endpoints: audit log, tokens, secrets, DR drills."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from uptally.web.schemas import Model


class AuditEntryOut(Model):
    seq: int
    at: str
    actor: str
    action: str
    target: str
    details: dict[str, Any]
    prev_hash: str
    hash: str


class AuditList(Model):
    entries: list[AuditEntryOut]
    # Personal data masked (a token without the admin scope): such entries cannot be re-hashed.
    redacted: bool = False


class AuditHead(Model):
    seq: int
    hash: str


class TokenOut(Model):
    id: str
    name: str
    scopes: list[str]
    created_at: str
    created_by: str
    expires_at: str | None
    revoked_at: str | None
    last_used_at: str | None


class TokenList(Model):
    tokens: list[TokenOut]


class TokenIn(Model):
    name: str = Field(min_length=1, max_length=128)
    scopes: list[str] = Field(min_length=1, max_length=20)
    expires_at: str | None = Field(default=None, max_length=40, description="ISO 8601")


class TokenCreated(TokenOut):
    token: str = Field(description="The token itself: shown once, only a hash is stored.")


class SecretOut(Model):
    name: str
    set: Literal[True] = True
    key_id: str
    created_at: str
    updated_at: str


class SecretList(Model):
    secrets: list[SecretOut]


class SecretIn(Model):
    value: str = Field(min_length=1, max_length=65_536)


class DrillOut(Model):
    id: str
    at: str
    backup: str
    backup_created_at: str | None
    rto_s: float | None
    rpo_s: float | None
    rto_target_s: float
    rpo_target_s: float
    ok: bool
    checks: list[dict[str, Any]]


class DrillList(Model):
    drills: list[DrillOut]
