"""The status pages: HTML, Statuspage v2 JSON, feeds and badges, cached with ETags.

`page_router` makes every route of one page (one `StatusSite`) under its path: the main page
at /, each page of `status_pages` at its own path (/internal/, /internal/history, …). A private
page asks for a token on every route and is never cached by anyone but the reader. The
documents widgets read (v2 JSON, feeds, badges) of a public page may be read by any web page
(CORS); nothing else may.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from fastapi.responses import RedirectResponse, Response

from uptally import offloop
from uptally.statuspage import render
from uptally.statuspage.cache import Rendered
from uptally.statuspage.model import PageModel
from uptally.statuspage.site import StatusSite
from uptally.web import security
from uptally.web.auth import require_page
from uptally.web.errors import ApiError
from uptally.web.schemas import ErrorOut

router = APIRouter(tags=["status page"])  # what all pages share (their script)

PAGE_CACHE = "public, max-age=30, stale-while-revalidate=30"
BADGE_CACHE = "public, max-age=60, stale-while-revalidate=60"
PRIVATE_CACHE = "private, no-store"
HTML = "text/html; charset=utf-8"
JSON = "application/json"

Produce = Callable[[PageModel], Awaitable[tuple[bytes, str] | None]]
FastPaths = dict[str, tuple[StatusSite, str, bool]]  # path → site, cache key, cross-origin

# Widgets on other sites (e.g. @statuspage/status-widget) read these keys of a public page.
CROSS_ORIGIN_KEYS = ("v2:", "atom", "rss", "badge:")
CORS = [(b"access-control-allow-origin", b"*")]
PREFLIGHT = {
    "Access-Control-Allow-Origin": "*",
    "Access-Control-Allow-Methods": "GET, HEAD, OPTIONS",
    "Access-Control-Max-Age": "86400",
    "Vary": "Access-Control-Request-Headers",
}


def cross_origin(site: StatusSite, key: str) -> bool:
    """May any web page read this document (CORS)? Only a public page's v2 JSON, feeds and
    badges."""
    return not site.private and key.startswith(CROSS_ORIGIN_KEYS)


async def _serve(
    request: Request, site: StatusSite, key: str, produce: Produce, cache_control: str
) -> Response:
    await site.refresh()
    rendered = await site.cache.get(key, produce, cache_control)
    if rendered is None:
        headers = {"Cache-Control": PRIVATE_CACHE} if site.private else None
        raise ApiError(404, "not found", headers=headers)
    return respond(request, rendered, cross_origin(site, key))


def respond(request: Request, rendered: Rendered, cors: bool = False) -> Response:
    """The full path's answer: the same headers as the fast path sends."""
    gzipped = rendered.gzipped is not None and "gzip" in request.headers.get("accept-encoding", "")
    headers = wire_headers(rendered, gzipped, cors)
    etag = rendered.gzip_etag if gzipped else rendered.etag
    if request.headers.get("if-none-match") == etag:
        response = Response(status_code=304)
        response.raw_headers = [h for h in headers if h[0] not in _NOT_ON_304]
        return response
    response = Response(rendered.gzipped if gzipped else rendered.body)
    response.raw_headers = list(headers)
    return response


FAST_KEYS = {
    "/": "index",
    "/feed.atom": "atom",
    "/feed.rss": "rss",
    **{f"/api/v2/{name}": f"v2:{name}" for name in render.V2_DOCUMENTS},
}


def fast_paths(sites: Iterable[StatusSite]) -> FastPaths:
    """Full path → (site, cache key) of what the fast path may answer: public pages only."""
    table: FastPaths = {}
    for site in sites:
        if not site.private:
            table.update(
                {
                    site.path + path: (site, key, cross_origin(site, key))
                    for path, key in FAST_KEYS.items()
                }
            )
    return table


async def fast_path(scope: Any, send: Any, table: FastPaths) -> bool:
    """Answer a visitor from the cache without routing (a rush hits these few paths), with
    response headers built once per rendering, security headers included."""
    if scope["method"] not in ("GET", "HEAD") or scope.get("query_string"):
        return False
    found = table.get(scope["path"])
    if found is None or found[0].private:  # a private page always takes the guarded route
        return False
    site, key, cors = found
    rendered = site.peek(key)
    if rendered is None:
        return False
    accept = match = b""
    for name, value in scope.get("headers") or ():
        if name == b"accept-encoding":
            accept = value
        elif name == b"if-none-match":
            match = value
    gzipped = rendered.gzipped is not None and b"gzip" in accept
    headers = wire_headers(rendered, gzipped, cors)
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


def wire_headers(rendered: Rendered, gzipped: bool, cors: bool) -> list[tuple[bytes, bytes]]:
    """Response headers of a rendering as sent, security (and CORS) headers included; built
    once."""
    headers = rendered.wire.get((gzipped, cors))
    if headers is None:
        headers = _build_headers(rendered, gzipped) + (CORS if cors else [])
        rendered.wire[(gzipped, cors)] = headers
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


def page_router(site: StatusSite) -> APIRouter:
    """Every route of one status page, below its path ("" for the main page)."""
    base = site.path
    links = render.Links(prefix=base)
    page_cache = PRIVATE_CACHE if site.private else PAGE_CACHE
    badge_cache = PRIVATE_CACHE if site.private else BADGE_CACHE
    in_schema = site.page is None  # the API documentation describes the main page
    guard = (
        [
            Depends(
                require_page(
                    site.page or "", lambda: site.scope.site.title, {"Cache-Control": PRIVATE_CACHE}
                )
            )
        ]
        if site.private
        else []
    )
    pages = APIRouter(tags=["status page"], dependencies=guard)

    async def serve(
        request: Request, key: str, produce: Produce, cache_control: str = page_cache
    ) -> Response:
        return await _serve(request, site, key, produce, cache_control)

    if base:

        @pages.get(base, include_in_schema=False)
        async def to_index(request: Request) -> Response:
            query = request.url.query
            headers = {"Cache-Control": PRIVATE_CACHE} if site.private else None
            target = f"{base}/" + (f"?{query}" if query else "")
            return RedirectResponse(target, status_code=308, headers=headers)

    @pages.get(f"{base}/", include_in_schema=False)
    async def index(request: Request) -> Response:
        async def produce(model: PageModel) -> tuple[bytes, str]:
            return await offloop.run(render.index_html, model, links), HTML

        return await serve(request, "index", produce)

    @pages.get(f"{base}/history", include_in_schema=False)
    async def history(request: Request, page: int = 1) -> Response:
        if not 1 <= page <= 1000:
            raise ApiError(404, "no such page")

        async def produce(model: PageModel) -> tuple[bytes, str]:
            body, _ = await site.history_page(model, page, links)
            return body, HTML

        return await serve(request, f"history:{page}", produce)

    @pages.get(f"{base}/incidents/{{incident_id}}", include_in_schema=False)
    async def incident(request: Request, incident_id: str) -> Response:
        async def produce(model: PageModel) -> tuple[bytes, str] | None:
            found = await site.find_incident(model, incident_id)
            if found is None:
                return None
            return await offloop.run(render.incident_html, model, links, found), HTML

        return await serve(request, f"incident:{incident_id}", produce)

    @pages.get(f"{base}/maintenance/{{window_id}}", include_in_schema=False)
    async def maintenance(request: Request, window_id: str) -> Response:
        async def produce(model: PageModel) -> tuple[bytes, str] | None:
            found = next((w for w in model.maintenance if w.id == window_id), None)
            if found is None:
                return None
            return await offloop.run(render.maintenance_html, model, links, found), HTML

        return await serve(request, f"maintenance:{window_id}", produce)

    def v2_route(name: str) -> None:
        async def endpoint(request: Request) -> Response:
            async def produce(model: PageModel) -> tuple[bytes, str]:
                return await offloop.run(render.v2_json, model, name), JSON

            return await serve(request, f"v2:{name}", produce)

        endpoint.__name__ = "v2_" + name.replace("/", "_").replace("-", "_").removesuffix(".json")
        pages.add_api_route(
            f"{base}/api/v2/{name}",
            endpoint,
            methods=["GET"],
            summary=f"Statuspage v2 {name}",
            include_in_schema=in_schema,
        )

    for name in render.V2_DOCUMENTS:
        v2_route(name)

    @pages.get(f"{base}/feed.atom", include_in_schema=False)
    async def feed_atom(request: Request) -> Response:
        async def produce(model: PageModel) -> tuple[bytes, str]:
            return await offloop.run(render.atom, model), "application/atom+xml; charset=utf-8"

        return await serve(request, "atom", produce)

    @pages.get(f"{base}/feed.rss", include_in_schema=False)
    async def feed_rss(request: Request) -> Response:
        async def produce(model: PageModel) -> tuple[bytes, str]:
            return await offloop.run(render.rss, model), "application/rss+xml; charset=utf-8"

        return await serve(request, "rss", produce)

    @pages.get(
        f"{base}/badge/{{key}}/{{kind}}.svg",
        summary="A shields-style badge: status, uptime or latency",
        response_class=Response,
        responses={
            200: {"content": {"image/svg+xml": {}}, "description": "The badge"},
            404: {"model": ErrorOut, "description": "No component or monitor with that key"},
        },
        include_in_schema=in_schema,
    )
    async def badge(
        request: Request,
        key: str,
        kind: Literal["status", "uptime", "latency"],
        period: Literal["24h", "7d", "30d", "90d"] = "30d",
    ) -> Response:
        async def produce(model: PageModel) -> tuple[bytes, str] | None:
            body = await offloop.run(render.badge, model, key, kind, period)
            return (body, "image/svg+xml") if body else None

        return await serve(request, f"badge:{key}:{kind}:{period}", produce, badge_cache)

    if not site.private:
        shared = [f"{base}/api/v2/{name}" for name in render.V2_DOCUMENTS]
        shared += [f"{base}/feed.atom", f"{base}/feed.rss", f"{base}/badge/{{key}}/{{kind}}.svg"]
        for path in shared:
            pages.add_api_route(path, preflight, methods=["OPTIONS"], include_in_schema=False)
    return pages


async def preflight(request: Request) -> Response:
    """A browser asks whether a page of another origin may GET a shared document: yes, with
    whatever request headers it names (the documents are public; no credentials are used)."""
    headers = dict(PREFLIGHT)
    asked = request.headers.get("access-control-request-headers")
    if asked:
        headers["Access-Control-Allow-Headers"] = asked
    return Response(status_code=204, headers=headers)


@router.get("/static/local-times.js", include_in_schema=False)
async def local_times(request: Request) -> Response:
    body = (render.STATIC / "local-times.js").read_bytes()
    return Response(
        body, media_type="text/javascript", headers={"Cache-Control": "public, max-age=3600"}
    )


@router.get("/favicon.ico", include_in_schema=False)
@router.get("/static/favicon.svg", include_in_schema=False)
async def favicon() -> Response:
    """The page's icon (an SVG: browsers take it at /favicon.ico too)."""
    body = (render.STATIC / "favicon.svg").read_bytes()
    return Response(
        body, media_type="image/svg+xml", headers={"Cache-Control": "public, max-age=86400"}
    )
