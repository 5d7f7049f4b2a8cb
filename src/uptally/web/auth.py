"""Bearer-token authentication for the admin API (UPTALLY_ADMIN_TOKEN)."""

from __future__ import annotations

import hmac

from fastapi import Request

from uptally.web.errors import ApiError

_CHALLENGE = {"WWW-Authenticate": "Bearer"}


def require_admin(request: Request) -> None:
    expected: str | None = request.app.state.admin_token
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if not expected:
        raise ApiError(
            401,
            "the admin API is disabled: set UPTALLY_ADMIN_TOKEN to enable it",
            headers=_CHALLENGE,
        )
    if scheme.lower() != "bearer" or not token:
        raise ApiError(
            401, "missing bearer token (Authorization: Bearer <token>)", headers=_CHALLENGE
        )
    if not hmac.compare_digest(token.strip().encode(), expected.encode()):
        raise ApiError(401, "invalid token", headers=_CHALLENGE)
