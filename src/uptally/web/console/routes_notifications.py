"""The console's notifications page: channels (never their URLs or secrets) with "send test",
each channel's delivery log with "retry", the on-time share, and subscribers with counts and
the CSV export. Reads and actions are the admin API's own (api_channels, api_channel_actions)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Path, Request
from starlette.responses import PlainTextResponse, RedirectResponse, Response

from uptally.config.schema import ID_PATTERN
from uptally.incidents.texts import format_time
from uptally.notify import operator
from uptally.subscribers import roster
from uptally.web import api_channel_actions as actions
from uptally.web.api_channels import list_channels, list_deliveries
from uptally.web.console import render
from uptally.web.console.session import Admin, Editor, Viewer, principal
from uptally.web.deps import runtime_of
from uptally.web.errors import ApiError

router = APIRouter(prefix="/console/notifications", include_in_schema=False)
ChannelId = Annotated[str, Path(pattern=ID_PATTERN)]
DeliveryId = Annotated[str, Path(pattern=r"^[0-9a-f]{26}$")]
LOG = 10  # deliveries per channel on the page; `more=<channel>` shows up to LOG_MORE
LOG_MORE = 100
SUBSCRIBERS_SHOWN = 50
_NOTICES = {
    "tested": "Test message queued: it is tried at once and shows in the channel's log.",
    "retried": "Delivery queued again: it is tried at once.",
}


def local_time(value: str | int | None, timezone: str) -> str:
    """An API timestamp (ISO text or milliseconds) in the site timezone; — for none."""
    if value is None or value == "":
        return "—"
    if isinstance(value, str):
        value = round(datetime.fromisoformat(value).timestamp() * 1000)
    return format_time(value, timezone)


def _back(done: str, anchor: str) -> RedirectResponse:
    return RedirectResponse(
        f"/console/notifications?done={done}#{anchor}", status_code=303, headers=render.NO_STORE
    )


@router.get("")
async def notifications_page(
    request: Request, signed: Viewer, done: str = "", more: str = ""
) -> Response:
    runtime = runtime_of(request)
    now = runtime.clock.now_ms()
    channels = (await list_channels(request)).channels
    health = await operator.channel_health(runtime.db, [c.id for c in channels], now)
    logs = {
        c.id: (
            await list_deliveries(
                request,
                channel=c.id,
                target=None,
                state=None,
                event=None,
                limit=LOG_MORE if more == c.id else LOG,
            )
        ).deliveries
        for c in channels
    }
    subscribers = await roster.everyone(runtime.db)
    counted = roster.roster(runtime.config, subscribers)
    newest = sorted(subscribers, key=lambda s: s.id, reverse=True)[:SUBSCRIBERS_SHOWN]
    return await render.page(
        request,
        signed,
        "notifications_page.html",
        nav="notifications",
        title="Notifications",
        notice=_NOTICES.get(done, ""),
        channels=channels,
        health=health,
        logs=logs,
        more=more,
        log_size=LOG,
        roster=counted,
        subscribers=newest,
        subscriber_total=len(subscribers),
        masked=roster.masked,
        when=lambda value: local_time(value, runtime.config.site.timezone),
    )


@router.post("/channels/{channel_id}/test")
async def send_test(request: Request, signed: Editor, channel_id: ChannelId) -> Response:
    runtime = runtime_of(request)
    try:
        await actions.send_test(runtime, channel_id, principal(signed).actor)
    except ApiError as error:
        return await _refused(request, signed, error)
    return _back("tested", f"channel-{channel_id}")


@router.post("/deliveries/{delivery_id}/retry")
async def retry(request: Request, signed: Editor, delivery_id: DeliveryId) -> Response:
    runtime = runtime_of(request)
    try:
        queued = await actions.retry_delivery(runtime, delivery_id, principal(signed).actor)
    except ApiError as error:
        return await _refused(request, signed, error)
    channel = queued.target.removeprefix("channel:")
    return _back("retried", f"channel-{channel}")


@router.get("/subscribers.csv")
async def subscribers_csv(request: Request, signed: Admin) -> Response:
    """Every subscriber with their address: personal data, for admins only (as in the API)."""
    found = await roster.everyone(runtime_of(request).db)
    headers = {**render.NO_STORE, "Content-Disposition": 'attachment; filename="subscribers.csv"'}
    return PlainTextResponse(roster.to_csv(found), media_type="text/csv", headers=headers)


async def _refused(request: Request, signed: Editor, error: ApiError) -> Response:
    return await render.page(
        request,
        signed,
        "message.html",
        status=error.status,
        title="Not done",
        message=f"{error.message} Nothing was changed.",
    )
