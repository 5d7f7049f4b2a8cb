"""Admin API: monitors with their current state, their results and (heartbeats) pings."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Query, Request, Response

from uptally import offloop
from uptally.clock import iso
from uptally.config.managed import MONITOR
from uptally.web import api_monitor_history, monitor_list, monitor_order, monitor_reads
from uptally.web.auth import principal_of, require_admin
from uptally.web.deps import TimeParam, base_url, millis, runtime_of, storable
from uptally.web.errors import ApiError
from uptally.web.managed_http import deleted_monitor, is_id, tag_response
from uptally.web.schemas import ErrorOut, MonitorOut, MonitorPage, PingList, ResultList
from uptally.web.views import monitor_out, ping_out, result_out, shown_config

router = APIRouter(
    prefix="/api/v1/monitors",
    tags=["monitors"],
    dependencies=[Depends(require_admin)],
    responses={
        400: {"model": ErrorOut},
        401: {"model": ErrorOut},
        404: {"model": ErrorOut},
        422: {"model": ErrorOut},
    },
)


@router.get(
    "",
    # deleted=true answers the other shape (the tombstones): the document says both
    response_model=MonitorPage | api_monitor_history.DeletedMonitorList,
    summary="List monitors, a page at a time",
    description="`limit` at a time (default 100, at most 1000), in the order `sort`: `id` "
    "(the default), `name`, `state` (up, paused, maintenance, unknown, degraded, down) or "
    "`kind`, "
    "each then by id; a `-` first sorts descending (`-state`: the worst first). The answer's "
    '`next_cursor` (also a `Link: <…>; rel="next"` header) fetches the next page with the '
    "same filters and sort, null on the last page; a cursor given with another sort answers "
    "400. `state`, `kind` and `tag` take comma-separated lists: `state` and `kind` match any "
    "listed value, `tag` only monitors that have ALL the listed tags. `q` matches id, name or "
    "target (case-insensitive). Sorted by state, a monitor that changes state between two "
    "pages can be listed twice or not at all. `deleted=true` lists instead the monitors "
    'deleted through the API: `{"monitors": [{"id", "kind", "deleted_at", "deleted_by"}]}` '
    "(one list, not paged; other parameters are ignored).",
)
async def list_monitors(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=monitor_list.MAX_LIMIT)] = monitor_list.DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(max_length=400)] = None,
    state: Annotated[str | None, Query(max_length=200, examples=["down,degraded"])] = None,
    kind: Annotated[str | None, Query(max_length=200, examples=["http"])] = None,
    component: Annotated[str | None, Query(max_length=64)] = None,
    location: Annotated[str | None, Query(max_length=64)] = None,
    q: Annotated[str | None, Query(max_length=200)] = None,
    tag: Annotated[str | None, Query(max_length=2000, examples=["team:shop,env/prod"])] = None,
    sort: Annotated[str | None, Query(max_length=10, examples=["-state"])] = None,
    deleted: bool = False,
) -> Response:
    if deleted:  # another list: the tombstones (see api_monitor_history)
        tombstones = await api_monitor_history.deleted_monitors(request)
        return Response(tombstones.model_dump_json(), media_type="application/json")
    runtime = runtime_of(request)
    filters = monitor_list.parse_filters(runtime, state, kind, component, location, q, tag)
    order = monitor_order.parse_sort(sort)
    after = monitor_order.decode_cursor(cursor, order) if cursor is not None else None
    index = await offloop.run(monitor_list.index_of, runtime.config)  # sorts, once per config
    url = base_url(request)
    ping = _ping_base(request)
    page: list[MonitorOut] = []
    last: monitor_order.Key | None = None
    more = False
    pacer = offloop.Pacer()  # a page of 1000 takes a while: let the probes read replies
    async for key, monitor in monitor_list.matching(runtime, index, filters, order, after):
        if len(page) == limit:
            more = True
            break
        page.append(monitor_out(runtime, monitor, ping, index.components.get(monitor.id, [])))
        last = key
        await pacer.tick()
    next_cursor = monitor_order.encode_cursor(order, last) if more and last else None
    body = MonitorPage(monitors=page, next_cursor=next_cursor)
    content = await offloop.run(body.model_dump_json)  # megabytes at the largest page
    headers = {}
    if next_cursor is not None:
        following = request.url.include_query_params(cursor=next_cursor)
        headers["Link"] = f'<{url}{following.path}?{following.query}>; rel="next"'
    return Response(content, media_type="application/json", headers=headers)


@router.get("/{monitor_id}", response_model=MonitorOut)
async def get_monitor(request: Request, monitor_id: str, response: Response) -> MonitorOut:
    """With the write scope, `config` is the monitor in the config schema (what PUT takes);
    a monitor made through the API has a `version`, also its `ETag` (for `If-Match`)."""
    runtime = runtime_of(request)
    monitor = runtime.config.monitor(monitor_id)
    row = await runtime.changes.row(MONITOR, monitor_id) if is_id(monitor_id) else None
    if monitor is None:
        if row is not None and row.deleted_at is not None:
            message = (
                f"monitor {monitor_id!r} was deleted at {iso(row.deleted_at)} by "
                f"{row.updated_by}; its results and outages are kept"
            )
            raise ApiError(404, message, "deleted")
        raise ApiError(404, f"no monitor {monitor_id!r}")
    out = monitor_out(runtime, monitor, _ping_base(request))
    if row is not None and not row.deleted and out.source == "api":
        out.version = row.version
        tag_response(response, row.version)
    if principal_of(request).allows("write"):
        out.config = shown_config(monitor, runtime.config.security.secret_query_keys)
    return out


def _ping_base(request: Request) -> str | None:
    """Ping URLs record pings: shown to tokens with the write scope only."""
    return base_url(request) if principal_of(request).allows("write") else None


@router.get("/{monitor_id}/results", response_model=ResultList)
async def list_results(
    request: Request,
    monitor_id: str,
    location: Annotated[str | None, Query(max_length=64)] = None,
    since: TimeParam = None,
    until: TimeParam = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> ResultList:
    """Also of a monitor deleted through the API: its results are kept."""
    runtime = runtime_of(request)
    if runtime.config.monitor(monitor_id) is None and not await deleted_monitor(
        runtime, monitor_id
    ):
        raise ApiError(404, f"no monitor {monitor_id!r}")
    rows = await monitor_reads.results_of(
        runtime,
        monitor_id,
        location=storable(location, "location"),
        since=millis(since, "since"),
        until=millis(until, "until"),
        limit=limit,
    )
    return ResultList(results=[result_out(r) for r in rows])


@router.get("/{monitor_id}/pings", response_model=PingList)
async def list_pings(
    request: Request,
    monitor_id: str,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> PingList:
    """A heartbeat monitor's pings, newest first, with their kind, exit status, run id, run
    duration (an end ping paired with its start) and body; also of a deleted monitor."""
    runtime = runtime_of(request)
    if runtime.config.monitor(monitor_id) is None and not await deleted_monitor(
        runtime, monitor_id
    ):
        raise ApiError(404, f"no monitor {monitor_id!r}")
    rows = await monitor_reads.pings_of(runtime, monitor_id, limit)
    return PingList(pings=[ping_out(p) for p in rows])
