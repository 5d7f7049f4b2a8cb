"""Shared request helpers: the runtime, the public base URL, time parameters."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import Query, Request

from uptally.clock import Millis, from_datetime
from uptally.runtime import Runtime
from uptally.web import hosts
from uptally.web.errors import ApiError


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def base_url(request: Request) -> str:
    """The base of links in this answer (see `hosts`): never a Host kept from another request."""
    listen: str = getattr(request.app.state, "listen_url", "")
    host = request.headers.get("host", "")
    return hosts.base_url(runtime_of(request).config, listen, host, request.scope["scheme"])


def millis(value: datetime | str | None, name: str) -> Millis | None:
    """Milliseconds from an ISO 8601 time (naive times are UTC); 422 for anything else."""
    if value is None:
        return None
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value)
        except ValueError:
            raise ApiError(
                422, f"{name}: not an ISO 8601 time such as 2026-10-01T00:00:00Z"
            ) from None
    try:
        return from_datetime(value)
    except (OverflowError, OSError, ValueError):
        raise ApiError(422, f"{name}: time out of range") from None


def storable(value: str | None, name: str) -> str | None:
    """A query parameter compared in the database: 422 for NUL (PostgreSQL refuses it) or lone
    surrogates (not encodable as UTF-8), which no stored value has."""
    if value is not None and ("\x00" in value or any("\ud800" <= ch <= "\udfff" for ch in value)):
        raise ApiError(422, f"{name}: must not contain NUL characters or invalid Unicode")
    return value


# A type, not a shared `Query(...)` default: FastAPI copies Annotated metadata per parameter but
# stores a default `Query` object as is and writes the parameter's name into it as its alias, so
# one object shared by `since` and `until` made both read `?since=`.
TimeParam = Annotated[
    str | None,
    Query(
        max_length=40,
        json_schema_extra={"format": "date-time"},
        description="ISO 8601, e.g. 2026-10-01T00:00:00Z",
    ),
]
