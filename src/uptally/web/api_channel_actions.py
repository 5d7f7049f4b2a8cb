"""Admin API: send a channel a test message, retry a failed delivery (scope write; audited)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request

from uptally.config.schema import ID_PATTERN
from uptally.notify import operator
from uptally.runtime import Runtime
from uptally.web.auth import principal_of, require_admin
from uptally.web.deps import runtime_of
from uptally.web.errors import ApiError
from uptally.web.managed_http import ERRORS
from uptally.web.schemas import Model

router = APIRouter(prefix="/api/v1", tags=["channels"], responses=ERRORS)


class Queued(Model):
    delivery: str
    target: str


def wake(runtime: Runtime) -> None:
    """Tell this instance's notifier to look now (others notice within their poll)."""
    runtime.notifier.wake()


async def send_test(runtime: Runtime, channel_id: str, actor: str) -> Queued:
    """The service behind the API's and the console's "send test"."""
    now = runtime.clock.now_ms()
    try:
        delivery = await operator.send_test(runtime.db, runtime.config, channel_id, actor, now)
    except operator.NotFound as error:
        raise ApiError(404, str(error)) from None
    wake(runtime)
    return Queued(delivery=delivery, target=f"channel:{channel_id}")


async def retry_delivery(runtime: Runtime, delivery: str, actor: str) -> Queued:
    """The service behind the API's and the console's "retry"."""
    try:
        target = await operator.retry(runtime.db, delivery, actor, runtime.clock.now_ms())
    except operator.NotFound as error:
        raise ApiError(404, str(error)) from None
    wake(runtime)
    return Queued(delivery=delivery, target=target)


@router.post(
    "/channels/{channel_id}/test",
    response_model=Queued,
    status_code=202,
    summary="Send a channel a test message",
    dependencies=[Depends(require_admin)],
)
async def test_channel(
    request: Request, channel_id: Annotated[str, Path(pattern=ID_PATTERN)]
) -> Queued:
    """Queued first in the channel's queue and tried at once; the delivery (GET
    /api/v1/deliveries/{id}) tells how it went."""
    return await send_test(runtime_of(request), channel_id, principal_of(request).actor)


@router.post(
    "/deliveries/{delivery_id}/retry",
    response_model=Queued,
    status_code=202,
    summary="Retry a failed delivery",
    dependencies=[Depends(require_admin)],
)
async def retry(
    request: Request, delivery_id: Annotated[str, Path(pattern=r"^[0-9a-f]{26}$")]
) -> Queued:
    """A failed delivery pending again, tried at once; 404 unless it failed."""
    return await retry_delivery(runtime_of(request), delivery_id, principal_of(request).actor)
