"""Admin API (write scope): receivers for other tools' notifications (Alertmanager's webhook)."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ValidationError

from uptally.alertmanager import VERSION, Notification
from uptally.web.auth import require_scope
from uptally.web.deps import runtime_of
from uptally.web.errors import ApiError, json_pointer
from uptally.web.schemas import ErrorOut

router = APIRouter(
    prefix="/api/v1/integrations",
    tags=["integrations"],
    dependencies=[Depends(require_scope("write"))],
    responses={
        401: {"model": ErrorOut},
        403: {"model": ErrorOut},
        413: {"model": ErrorOut},
        422: {"model": ErrorOut},
        503: {"model": ErrorOut},
    },
)


class AlertsOut(BaseModel):
    alerts: int  # in the notification
    matched: int  # alert/monitor pairs: an alert can drive several external monitors
    recorded: int  # new results; 0 for a repeat of what was already received


@router.post(
    "/alertmanager",
    response_model=AlertsOut,
    summary="Receive an Alertmanager notification",
    description="Alertmanager's webhook payload, version 4 (point a `webhook_configs` receiver "
    "here with a write token as its bearer credentials). Each alert drives the `external` "
    "monitors whose `match` labels all equal the alert's labels: firing is down from the "
    "alert's `startsAt`, resolved is up from its `endsAt`. Repeats and regroupings "
    "(same fingerprint, status and `startsAt`) change nothing. 422 for a payload that is not "
    "version 4 or not valid; 503 if it could not be stored (Alertmanager retries).",
)
async def alertmanager(request: Request) -> AlertsOut:
    notification = _notification(await request.body())
    try:
        matched, recorded = await runtime_of(request).receive_alerts(notification)
    except TimeoutError:
        raise ApiError(
            503, "the notification could not be stored in time (the database does not answer)"
        ) from None
    return AlertsOut(alerts=len(notification.alerts), matched=matched, recorded=recorded)


def _notification(body: bytes) -> Notification:
    try:
        document: Any = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(422, "the body is not JSON (Alertmanager's webhook payload)") from None
    if not isinstance(document, dict):
        raise ApiError(422, "the body must be a JSON object (Alertmanager's webhook payload)")
    version = document.get("version")
    if version != VERSION:
        message = f"unsupported payload version {version!r}: only version {VERSION!r} is known"
        raise ApiError(422, message, details=[{"path": "/version", "message": message}])
    try:
        return Notification.model_validate(document)
    except ValidationError as error:
        details = [
            {"path": json_pointer(e["loc"]), "message": str(e["msg"])} for e in error.errors()
        ]
        first = details[0]
        raise ApiError(422, f"{first['path']}: {first['message']}", details=details) from None
