"""The console's overview: every monitor with its state, overall and per location, uptime and
latency, open outages first; filters, search and pages; live state over Server-Sent Events."""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.responses import Response

from uptally import offloop
from uptally.accounts import sessions
from uptally.livestate import RESYNC
from uptally.runtime import Runtime
from uptally.web import monitor_list
from uptally.web.console import render
from uptally.web.console.session import COOKIE, Viewer
from uptally.web.console.sparkline import Spark, spark
from uptally.web.deps import runtime_of
from uptally.web.errors import ApiError
from uptally.web.monitor_triage import TRIAGE, HistoryCache, triaged
from uptally.web.views import shown_target

router = APIRouter(prefix="/console", include_in_schema=False)

PAGE_SIZE = 100
HEARTBEAT_S = 15.0  # a comment keeps proxies from closing the stream; the session is checked
SEND_TIMEOUT_S = 30.0  # a client that takes no bytes for this long is dropped
COUNTED = ("down", "degraded", "unknown", "maintenance", "paused", "up")
Text = Annotated[str | None, Query(max_length=200)]
HISTORIES = HistoryCache()  # shared by every console of this process


@dataclass(frozen=True, slots=True)
class Row:
    id: str
    name: str
    kind: str
    target: str | None
    tags: list[str]
    state: str
    since: str  # how long it has been in that state, in words ("" if unknown)
    outage: str  # how long its open outage has lasted ("" if none)
    locations: list[tuple[str, str]]
    uptime_24h: str
    uptime_30d: str
    latency: str
    spark: Spark


def _duration(ms: int) -> str:
    minutes = max(0, ms) // 60_000
    if minutes < 1:
        return "under a minute"
    if minutes < 60:
        return f"{minutes} min"
    if minutes < 48 * 60:
        return f"{minutes // 60} h {minutes % 60} min"
    return f"{minutes // 1440} d"


def _percent(value: float | None) -> str:
    if value is None:
        return "–"
    # rounded down: 100 % only when nothing was lost
    return "100 %" if value >= 100 else f"{math.floor(value * 1000) / 1000:.3f} %"


def _blank(value: str | None) -> str | None:
    value = value.strip() if value else None
    return value or None


async def _rows(runtime: Runtime, monitors: list[Any]) -> list[Row]:
    history = await HISTORIES.get(runtime, monitors)
    now = runtime.clock.now_ms()
    secret_keys = runtime.config.security.secret_query_keys
    rows = []
    for monitor in monitors:
        state, locations = runtime.shown(monitor.id)
        pause = runtime.pausing.paused.get(monitor.id)
        status = runtime.evaluator.status(monitor.id)
        since = pause.start if pause else status.since if status else None
        outage = runtime.evaluator.open_outage(monitor.id)
        past = history[monitor.id]
        rows.append(
            Row(
                id=monitor.id,
                name=monitor.title,
                kind=monitor.kind,
                target=shown_target(monitor, secret_keys),
                tags=list(monitor.tags),
                state=state,
                since=_duration(now - since) if since else "",
                outage=_duration(now - outage.start) if outage else "",
                locations=list(locations),
                uptime_24h=_percent(past.uptime["24h"]),
                uptime_30d=_percent(past.uptime["30d"]),
                latency="–" if past.last_latency is None else f"{past.last_latency:.0f} ms",
                spark=spark(past.latency),
            )
        )
    return rows


@router.get("/")
async def overview(
    request: Request,
    signed: Viewer,
    state: Text = None,
    tag: Text = None,
    component: Text = None,
    location: Text = None,
    q: Text = None,
    page: Annotated[str | None, Query(max_length=12)] = None,
) -> Response:
    runtime = runtime_of(request)
    config = runtime.config
    index = await offloop.run(monitor_list.index_of, config)  # sorted once per config
    chosen = {
        "state": _blank(state),
        "tag": _blank(tag),
        "component": _blank(component),
        "location": _blank(location),
        "q": _blank(q),
    }
    error, invalid = "", ""
    try:
        filters = monitor_list.parse_filters(
            runtime,
            chosen["state"],
            None,
            chosen["component"],
            chosen["location"],
            chosen["q"],
            chosen["tag"],
        )
    except ApiError as refused:
        error, invalid, filters = refused.message, refused.message.split(":")[0], None
    positions = await triaged(runtime, index, filters) if filters is not None else []
    pages = max(1, -(-len(positions) // PAGE_SIZE))
    number = int(page) if page and page.isdigit() else 1
    number = min(max(1, number), pages)
    first = (number - 1) * PAGE_SIZE
    shown = [index.monitors[p] for p in positions[first : first + PAGE_SIZE]]
    rows = await _rows(runtime, shown)
    kept = {k: v for k, v in chosen.items() if v}

    def link(to: int) -> str:
        return "?" + urlencode({**kept, "page": to} if to > 1 else kept)

    return await render.page(
        request,
        signed,
        "overview.html",
        nav="overview",
        status=422 if error else 200,
        rows=rows,
        total=len(positions),
        first=first,
        page_number=number,
        pages=pages,
        previous=link(number - 1) if number > 1 else "",
        following=link(number + 1) if number < pages else "",
        filtered=bool(kept),
        chosen=chosen,
        filter_error=error,
        invalid=invalid,
        counts=[(s, runtime.live.counts.get(s, 0)) for s in COUNTED],
        monitors_total=len(index.ids),
        states=TRIAGE,
        tags=index.tag_names,
        components=[(c.id, c.title) for c in config.components],
        locations=config.location_names,
        seq=runtime.live.seq,
    )


@router.get("/events")
async def events(
    request: Request,
    signed: Viewer,
    since: Annotated[str | None, Query(max_length=20)] = None,
) -> Response:
    """Monitor state changes as they happen (Server-Sent Events); see uptally.livestate."""
    last = request.headers.get("last-event-id") or since
    start = int(last) if last and last.isdigit() else None
    token = request.cookies.get(COOKIE, "")
    stream = _stream(runtime_of(request), token, start)
    return EventSourceResponse(stream, ping=0, send_timeout=SEND_TIMEOUT_S, headers=render.NO_STORE)


async def _stream(
    runtime: Runtime, token: str, since: int | None
) -> AsyncIterator[ServerSentEvent]:
    subscription = runtime.live.subscribe(since)  # here: a stream never started holds none
    try:
        yield ServerSentEvent(event="ready", data=str(runtime.live.seq))
        checked = time.monotonic()
        while True:
            frame = await subscription.next(HEARTBEAT_S)
            if time.monotonic() - checked >= HEARTBEAT_S:  # busy or idle, every heartbeat
                checked = time.monotonic()
                if not await _still_signed_in(runtime, token):
                    yield ServerSentEvent(event="end", data="signed-out")
                    return
            if frame is None:
                yield ServerSentEvent(comment="keep-alive")
            elif frame is RESYNC:
                yield ServerSentEvent(event="resync", data=str(runtime.live.seq))
            else:
                yield ServerSentEvent(event="states", id=str(frame.seq), data=frame.data)
    finally:
        runtime.live.unsubscribe(subscription)


async def _still_signed_in(runtime: Runtime, token: str) -> bool:
    async with runtime.db.connect() as conn:
        signed, _ = await sessions.resolve(
            conn, token, runtime.clock.now_ms(), runtime.config.console
        )
    return signed is not None and signed.complete
