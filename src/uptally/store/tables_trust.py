"""Tables of trust and continuity: the audit chain, API tokens, encrypted secrets, DR drills."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, Index, Integer, LargeBinary, String, Table, Text

from uptally.store.tables import ID, metadata

HASH = 64  # SHA-256, hex
ACTOR = 128

audit_log = Table(
    "audit_log",
    metadata,
    Column("seq", BigInteger, primary_key=True, autoincrement=False),
    Column("at", BigInteger, nullable=False),
    Column("actor", String(ACTOR), nullable=False),
    Column("action", String(64), nullable=False),
    Column("target", String(256), nullable=False),
    Column("details", Text, nullable=False),  # canonical JSON
    Column("prev_hash", String(HASH), nullable=False),
    Column("hash", String(HASH), nullable=False),
    Index("ix_audit_log_at", "at"),
    Index("ix_audit_log_target", "target"),
)

# One row (id 1): the newest entry. Appenders update it first, which serialises them on both
# databases (SQLite's write lock, PostgreSQL's row lock), and it reveals a cut-off tail.
audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger, nullable=False),
    Column("hash", String(HASH), nullable=False),
)

api_tokens = Table(
    "api_tokens",
    metadata,
    Column("id", String(16), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("scopes", Text, nullable=False),  # space-separated
    Column("secret_hash", String(HASH), nullable=False),  # SHA-256 of the secret part
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(ACTOR), nullable=False),
    Column("expires_at", BigInteger),
    Column("revoked_at", BigInteger),
    Column("revoked_by", String(ACTOR)),
    Column("last_used_at", BigInteger),
    Column("last_used_ip", String(64)),
)

secrets = Table(
    "secrets",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("key_id", String(16), nullable=False),
    Column("ciphertext", LargeBinary, nullable=False),  # nonce + AES-256-GCM ciphertext + tag
    Column("created_at", BigInteger, nullable=False),
    Column("updated_at", BigInteger, nullable=False),
)

dr_drills = Table(
    "dr_drills",
    metadata,
    Column("id", String(ID), primary_key=True),
    Column("at", BigInteger, nullable=False),
    Column("backup", String(512), nullable=False),
    Column("backup_created_at", BigInteger),
    Column("rto_ms", BigInteger),
    Column("rpo_ms", BigInteger),
    Column("rto_target_ms", BigInteger, nullable=False),
    Column("rpo_target_ms", BigInteger, nullable=False),
    Column("ok", Boolean, nullable=False),
    Column("report", Text, nullable=False),  # JSON: the checks and their outcome
    Index("ix_dr_drills_at", "at"),
)
