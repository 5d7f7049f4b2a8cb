"""Tables of operator accounts: users, their sessions, one-time links and second factors."""

from __future__ import annotations

from sqlalchemy import BigInteger, Column, Index, Integer, LargeBinary, String, Table, Text

from uptally.store.tables import metadata, sequence

HASH = 64  # SHA-256, hex
EMAIL = 254

users = Table(
    "users",
    metadata,
    Column("id", String(16), primary_key=True),
    Column("email", String(EMAIL), nullable=False, unique=True),  # lower-cased
    Column("name", String(128), nullable=False),
    Column("role", String(16), nullable=False),  # viewer | responder | editor | admin
    Column("password_hash", Text),  # argon2id; NULL for single-sign-on-only users
    Column("sso_subject", String(512), unique=True),  # "<issuer> <sub>" of a linked SSO identity
    Column("totp_secret", Text),  # base32, encrypted when a secret key is set ("enc:…")
    Column("totp_enabled_at", BigInteger),
    Column("failed_logins", Integer, nullable=False, default=0),
    Column("locked_until", BigInteger),
    Column("created_at", BigInteger, nullable=False),
    Column("created_by", String(128), nullable=False),
    Column("disabled_at", BigInteger),
    Column("last_login_at", BigInteger),
    Column("password_changed_at", BigInteger),
    Column("totp_last_step", BigInteger),  # the 30 s step of the last TOTP code used (no replay)
)

# A signed-in browser. Only a SHA-256 of the cookie's token is stored.
user_sessions = Table(
    "user_sessions",
    metadata,
    Column("id", String(HASH), primary_key=True),
    Column("user_id", String(16), nullable=False),
    Column("stage", String(16), nullable=False),  # "second_factor" until the code is given; "full"
    Column("csrf", String(HASH), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("last_seen_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),  # the absolute timeout
    Column("revoked_at", BigInteger),
    Column("ip", String(64), nullable=False),
    Column("user_agent", String(256), nullable=False),
    Column("challenge", String(128)),  # the passkey challenge this session was last given
    Index("ix_user_sessions_user_id", "user_id"),
)

# One-time links: the first admin's setup link, password resets. Only a SHA-256 is stored.
account_links = Table(
    "account_links",
    metadata,
    Column("id", String(HASH), primary_key=True),
    Column("kind", String(16), nullable=False),  # setup | reset
    Column("user_id", String(16)),
    Column("created_at", BigInteger, nullable=False),
    Column("expires_at", BigInteger, nullable=False),
    Column("used_at", BigInteger),
)

recovery_codes = Table(
    "recovery_codes",
    metadata,
    Column("id", sequence(), primary_key=True, autoincrement=True),
    Column("user_id", String(16), nullable=False),
    Column("code_hash", String(HASH), nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("used_at", BigInteger),
    Index("ix_recovery_codes_user_id", "user_id"),
)

webauthn_credentials = Table(
    "webauthn_credentials",
    metadata,
    Column("id", String(512), primary_key=True),  # the credential id, base64url
    Column("user_id", String(16), nullable=False),
    Column("name", String(64), nullable=False),
    Column("public_key", LargeBinary, nullable=False),
    Column("sign_count", BigInteger, nullable=False),
    Column("created_at", BigInteger, nullable=False),
    Column("last_used_at", BigInteger),
    Index("ix_webauthn_credentials_user_id", "user_id"),
)
