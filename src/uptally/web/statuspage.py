"""The public status page: HTML, Statuspage v2 JSON, feeds and badges, cached with ETags."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import Response

from uptally.statuspage import render
from uptally.statuspage.cache import Rendered
from uptally.statuspage.model import PageModel
from uptally.statuspage.site import StatusSite
from uptally.web import security
from uptally.web.errors import ApiError
from uptally.web.schemas import ErrorOut

router = APIRouter(tags=["status page"])

PAGE_CACHE = "public, max-age=30, stale-while-revalidate=30"
BADGE_CACHE = "public, max-age=60, stale-while-revalidate=60"
HTML = "text/html; charset=utf-8"
JSON = "application/json"


def site_of(request: Request) -> StatusSite:
    site: StatusSite = request.app.state.status_site
    return site


async def _serve(
    request: Request,
    key: str,
    produce: Callable[[PageModel], Awaitable[tuple[bytes, str] | None]],
    cache_control: str = PAGE_CACHE,
) -> Response:
    site = site_of(request)
    if not site.base_url:
        site.base_url = str(request.base_url).rstrip("/")
    await site.refresh()
    rendered = await site.cache.get(key, produce, cache_control)
    if rendered is None:
        raise ApiError(404, "not found")
    return respond(request, rendered)


def respond(request: Request, rendered: Rendered) -> Response:
    """The full path's answer: the same headers as the fast path sends."""
    gzipped = rendered.gzipped is not None and "gzip" in request.headers.get("accept-encoding", "")
    headers = wire_headers(rendered, gzipped)
    etag = rendered.gzip_etag if gzipped else rendered.etag
    if request.headers.get("if-none-match") == etag:
        response = Response(status_code=304)
        response.raw_headers = [h for h in headers if h[0] not in _NOT_ON_304]
        return response
    response = Response(rendered.gzipped if gzipped else rendered.body)
    response.raw_headers = list(headers)
    return response


LIVE = render.Links()
FAST_KEYS = {
    "/": "index",
    "/feed.atom": "atom",
    "/feed.rss": "rss",
    **{f"/api/v2/{name}": f"v2:{name}" for name in render.V2_DOCUMENTS},
}


async def fast_path(scope: Any, send: Any, site: StatusSite) -> bool:
    """Answer a visitor from the cache without routing (a rush hits these few paths), with
    response headers built once per rendering, security headers included."""
    if scope["method"] not in ("GET", "HEAD") or scope.get("query_string"):
        return False
    key = FAST_KEYS.get(scope["path"])
    rendered = site.peek(key) if key else None
    if rendered is None:
        return False
    accept = match = b""
    for name, value in scope.get("headers") or ():
        if name == b"accept-encoding":
            accept = value
        elif name == b"if-none-match":
            match = value
    gzipped = rendered.gzipped is not None and b"gzip" in accept
    headers = wire_headers(rendered, gzipped)
    if match and match.decode("latin-1") == (rendered.gzip_etag if gzipped else rendered.etag):
        unchanged = [h for h in headers if h[0] not in _NOT_ON_304]
        await send({"type": "http.response.start", "status": 304, "headers": unchanged})
        await send({"type": "http.response.body", "body": b""})
        return True
    body = rendered.gzipped if gzipped and rendered.gzipped is not None else rendered.body
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if scope["method"] == "HEAD" else body})
    return True


_NOT_ON_304 = (b"content-length", b"content-encoding", b"content-type")


def wire_headers(rendered: Rendered, gzipped: bool) -> list[tuple[bytes, bytes]]:
    """Response headers of a rendering as sent, security headers included; built once."""
    headers = rendered.wire.get(gzipped)
    if headers is None:
        headers = rendered.wire[gzipped] = _build_headers(rendered, gzipped)
    return headers


def _build_headers(rendered: Rendered, gzipped: bool) -> list[tuple[bytes, bytes]]:
    body = rendered.gzipped if gzipped and rendered.gzipped is not None else rendered.body
    headers = [
        (b"etag", (rendered.gzip_etag if gzipped else rendered.etag).encode()),
        (b"last-modified", rendered.last_modified.encode()),
        (b"cache-control", rendered.cache_control.encode()),
        (b"vary", b"Accept-Encoding"),
        (b"content-type", rendered.content_type.encode()),
        (b"content-length", str(len(body)).encode()),
    ]
    if gzipped:
        headers.append((b"content-encoding", b"gzip"))
    return headers + security.HEADERS


@router.get("/", include_in_schema=False)
async def index(request: Request) -> Response:
    async def produce(model: PageModel) -> tuple[bytes, str]:
        return render.index_html(model, LIVE), HTML

    return await _serve(request, "index", produce)


@router.get("/history", include_in_schema=False)
async def history(request: Request, page: int = 1) -> Response:
    if not 1 <= page <= 1000:
        raise ApiError(404, "no such page")
    site = site_of(request)

    async def produce(model: PageModel) -> tuple[bytes, str]:
        body, _ = await site.history_page(model, page, LIVE)
        return body, HTML

    return await _serve(request, f"history:{page}", produce)


@router.get("/incidents/{incident_id}", include_in_schema=False)
async def incident(request: Request, incident_id: str) -> Response:
    site = site_of(request)

    async def produce(model: PageModel) -> tuple[bytes, str] | None:
        found = await site.find_incident(model, incident_id)
        return (render.incident_html(model, LIVE, found), HTML) if found else None

    return await _serve(request, f"incident:{incident_id}", produce)


@router.get("/maintenance/{window_id}", include_in_schema=False)
async def maintenance(request: Request, window_id: str) -> Response:
    async def produce(model: PageModel) -> tuple[bytes, str] | None:
        found = next((w for w in model.maintenance if w.id == window_id), None)
        return (render.maintenance_html(model, LIVE, found), HTML) if found else None

    return await _serve(request, f"maintenance:{window_id}", produce)


def _v2_route(name: str) -> None:
    async def endpoint(request: Request) -> Response:
        async def produce(model: PageModel) -> tuple[bytes, str]:
            return render.v2_json(model, name), JSON

        return await _serve(request, f"v2:{name}", produce)

    endpoint.__name__ = "v2_" + name.replace("/", "_").replace("-", "_").removesuffix(".json")
    router.add_api_route(
        f"/api/v2/{name}", endpoint, methods=["GET"], summary=f"Statuspage v2 {name}"
    )


for _name in render.V2_DOCUMENTS:
    _v2_route(_name)


@router.get("/feed.atom", include_in_schema=False)
async def feed_atom(request: Request) -> Response:
    async def produce(model: PageModel) -> tuple[bytes, str]:
        return render.atom(model), "application/atom+xml; charset=utf-8"

    return await _serve(request, "atom", produce)


@router.get("/feed.rss", include_in_schema=False)
async def feed_rss(request: Request) -> Response:
    async def produce(model: PageModel) -> tuple[bytes, str]:
        return render.rss(model), "application/rss+xml; charset=utf-8"

    return await _serve(request, "rss", produce)


@router.get(
    "/badge/{key}/{kind}.svg",
    summary="A shields-style badge: status, uptime or latency",
    response_class=Response,
    responses={
        200: {"content": {"image/svg+xml": {}}, "description": "The badge"},
        404: {"model": ErrorOut, "description": "No component or monitor with that key"},
    },
)
async def badge(
    request: Request,
    key: str,
    kind: Literal["status", "uptime", "latency"],
    period: Literal["24h", "7d", "30d", "90d"] = "30d",
) -> Response:
    async def produce(model: PageModel) -> tuple[bytes, str] | None:
        body = render.badge(model, key, kind, period)
        return (body, "image/svg+xml") if body else None

    return await _serve(request, f"badge:{key}:{kind}:{period}", produce, BADGE_CACHE)


@router.get("/static/local-times.js", include_in_schema=False)
async def local_times(request: Request) -> Response:
    body = (render.STATIC / "local-times.js").read_bytes()
    return Response(
        body, media_type="text/javascript", headers={"Cache-Control": "public, max-age=3600"}
    )
