"""HTTP of managed objects: versions as ETags, If-Match, and the service's refusals as errors."""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterator
from typing import Any

from fastapi import Request, Response

from uptally.config.managed import MONITOR
from uptally.config.schema import ID_PATTERN
from uptally.managed.changes import (
    DocumentInvalid,
    InUse,
    NotFound,
    PreconditionFailed,
    Provisioned,
    SecretsNeedAdmin,
)
from uptally.runtime import Runtime
from uptally.web.errors import ApiError
from uptally.web.schemas import ErrorOut

# What the routes of managed objects may answer besides success (the OpenAPI document).
ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (400, 401, 403, 404, 409, 412, 413, 422, 429)
}


def etag(version: int) -> str:
    return f'"v{version}"'


def expected_version(request: Request) -> int | None:
    """The version `If-Match` names (None: no precondition, or `*`); 412 if it names none."""
    header = request.headers.get("if-match")
    if header is None or header.strip() == "*":
        return None
    tag = header.strip().removeprefix("W/")
    if len(tag) > 2 and tag[0] == tag[-1] == '"' and tag[1] == "v" and tag[2:-1].isdigit():
        return int(tag[2:-1])
    raise ApiError(412, f"If-Match {header!r} names no version of this object")


def tag_response(response: Response, version: int | None) -> None:
    if version is not None:
        response.headers["ETag"] = etag(version)


@contextlib.contextmanager
def refusals() -> Iterator[None]:
    """The change service's refusals as the API's errors (4xx JSON, never 500)."""
    try:
        yield
    except DocumentInvalid as error:
        details = [{"path": p.pointer, "message": p.message} for p in error.problems]
        raise ApiError(422, str(error), details=details) from None
    except Provisioned as error:
        raise ApiError(409, str(error), "provisioned") from None
    except InUse as error:
        raise ApiError(409, str(error), "in_use") from None
    except NotFound as error:
        raise ApiError(404, str(error)) from None
    except SecretsNeedAdmin as error:
        raise ApiError(403, str(error)) from None
    except PreconditionFailed as error:
        raise ApiError(412, str(error), "precondition_failed") from None


def is_id(value: str) -> bool:
    """Could name an object (anything else is no object's id, and not worth a query)."""
    return re.fullmatch(ID_PATTERN, value) is not None


async def deleted_monitor(runtime: Runtime, monitor_id: str) -> bool:
    """The monitor is no longer configured, but was made through the API and deleted: its
    results, outages and history are kept and still answered for."""
    if runtime.config.monitor(monitor_id) is not None or not is_id(monitor_id):
        return False
    row = await runtime.changes.row(MONITOR, monitor_id)
    return row is not None and row.deleted
