"""Single sign-on, the pure part: an ID token's claims → who signs in, groups → role, and the
values of one sign-in flow (state, nonce, PKCE verifier) derived from the browser's secret."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from uptally.accounts import roles
from uptally.accounts.roles import Role
from uptally.config.console import Oidc


class SsoRefused(Exception):
    """A single sign-on refused, with a message for the person signing in; `reason` for the
    audit log."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


@dataclass(frozen=True, slots=True)
class Identity:
    """Who the provider says signed in."""

    subject: str  # "<issuer> <sub>": unique across providers, stored as users.sso_subject
    email: str
    email_verified: bool  # False only when the provider says so explicitly
    name: str
    groups: tuple[str, ...]


def subject_of(issuer: str, sub: str) -> str:
    return f"{issuer} {sub}"


def claim(claims: Mapping[str, Any], name: str) -> Any:
    """A claim by name, or by a dotted path into nested objects ("realm_access.roles") when
    no claim has the whole name (some providers namespace claims with URLs, dots included)."""
    if name in claims:
        return claims[name]
    value: Any = claims
    for part in name.split("."):
        if not isinstance(value, Mapping) or part not in value:
            return None
        value = value[part]
    return value


def groups_of(claims: Mapping[str, Any], name: str) -> tuple[str, ...]:
    """The groups claim: a list of names (or one name); anything else counts as no groups."""
    value = claim(claims, name)
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list):
        return tuple(g for g in value if isinstance(g, str))
    return ()


def identity_of(issuer: str, claims: Mapping[str, Any], oidc: Oidc) -> Identity:
    """The identity in validated claims; SsoRefused when there is no subject or e-mail."""
    sub, email = claims.get("sub"), claims.get("email")
    if not isinstance(sub, str) or not sub:
        raise SsoRefused("no_subject", "The identity provider did not say who you are (no sub).")
    if not isinstance(email, str) or "@" not in email:
        raise SsoRefused(
            "no_email",
            "The identity provider did not give your e-mail address; uptally needs it "
            "(ask for the scope 'email').",
        )
    name = claims.get("name")
    return Identity(
        subject=subject_of(issuer, sub),
        email=email.strip().lower(),
        email_verified=claims.get("email_verified") is not False,
        name=name if isinstance(name, str) else "",
        groups=groups_of(claims, oidc.groups_claim),
    )


def role_for(groups: tuple[str, ...], oidc: Oidc) -> Role | None:
    """The highest role any of the groups maps to; else `default_role`; None: no access."""
    mapped = [Role(oidc.roles[g]) for g in groups if g in oidc.roles]
    found = roles.highest(mapped)
    if found is not None:
        return found
    return Role(oidc.default_role) if oidc.default_role else None


def refused_for_groups(identity: Identity, oidc: Oidc) -> SsoRefused:
    mapped = ", ".join(sorted(oidc.roles)) or "none configured"
    return SsoRefused(
        "no_group",
        f"You signed in at {oidc.name} as {identity.email}, but none of your groups gives "
        f"access to uptally (groups that do: {mapped}). Ask an administrator to add you to one.",
    )


# One sign-in flow. The browser keeps a random secret in a short-lived HttpOnly cookie; the
# state, nonce and PKCE verifier are derived from it, so nothing is stored on the server
# (any instance can finish the flow) and no signing key is needed: nothing in the cookie is
# believed, it is only a secret the callback must present again.


def new_flow_secret(now_ms: int) -> str:
    return f"{now_ms}.{secrets.token_urlsafe(32)}"


def flow_started(secret: str) -> int | None:
    head, dot, _ = secret.partition(".")
    return int(head) if dot and head.isdigit() else None


def _derive(secret: str, purpose: str) -> str:
    digest = hmac.new(secret.encode(), purpose.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


@dataclass(frozen=True, slots=True)
class Flow:
    state: str
    nonce: str
    verifier: str  # PKCE code_verifier (43 characters of base64url)


def flow_of(secret: str) -> Flow:
    return Flow(
        _derive(secret, "state"), _derive(secret, "nonce"), _derive(secret, "pkce-verifier")
    )


def state_matches(secret: str, state: str) -> bool:
    return hmac.compare_digest(flow_of(secret).state.encode(), state.encode())
