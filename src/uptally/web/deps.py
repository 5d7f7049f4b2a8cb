"""Shared request helpers: the runtime, the public base URL, time parameters."""

from __future__ import annotations

from datetime import datetime

from fastapi import Request

from uptally.clock import Millis, from_datetime
from uptally.runtime import Runtime
from uptally.web.errors import ApiError


def runtime_of(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def base_url(request: Request) -> str:
    configured = runtime_of(request).config.site.url
    return configured or str(request.base_url).rstrip("/")


def millis(value: datetime | None, name: str) -> Millis | None:
    if value is None:
        return None
    try:
        return from_datetime(value)
    except (OverflowError, OSError, ValueError):
        raise ApiError(422, f"{name}: time out of range") from None
