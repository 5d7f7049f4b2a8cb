"""The `console:` section: operator accounts, sessions, second factors and single sign-on."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, PlainSerializer, model_validator

from uptally.durations import parse_duration_ms

_AS_MS = PlainSerializer(lambda ms: f"{ms}ms", return_type=str, when_used="json")
Duration = Annotated[int, BeforeValidator(parse_duration_ms), _AS_MS]  # milliseconds
Role = Literal["viewer", "responder", "editor", "admin"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Oidc(_Strict):
    """Single sign-on with an OpenID Connect provider (authorization code flow with PKCE)."""

    issuer: str = Field(min_length=1, max_length=2048)  # its /.well-known/openid-configuration
    client_id: str = Field(min_length=1, max_length=512)
    client_secret_env: str | None = None  # the variable that holds the client secret
    name: str = Field(default="single sign-on", max_length=64)  # the button says "Sign in with …"
    scopes: list[str] = Field(default_factory=lambda: ["openid", "email", "profile"])
    groups_claim: str = Field(default="groups", max_length=128)
    # group -> role; the highest role of a user's groups wins; no matching group: no access
    roles: dict[str, Role] = Field(default_factory=dict)
    default_role: Role | None = None  # for users in none of the groups (None: refused)


class Console(_Strict):
    session_idle: Duration = 30 * 60_000  # a session unused this long ends
    session_absolute: Duration = 12 * 3_600_000  # and any session ends this long after sign-in
    min_password: int = Field(default=12, ge=8, le=128)
    lockout_failures: int = Field(default=5, ge=1, le=1000)  # failed sign-ins of one account
    lockout_time: Duration = 15 * 60_000  # ... lock it this long
    require_totp: bool = False  # every password user must set up a second factor
    oidc: Oidc | None = None

    @model_validator(mode="after")
    def _absolute_covers_idle(self) -> Console:
        if self.session_absolute < self.session_idle:
            raise ValueError("session_absolute must not be shorter than session_idle")
        return self
