"""JSON errors for every failure: `{"error": {"code", "message"}}` with a 4xx status (500 = bug,
503 `database_unavailable` = the database did not answer in time).

One exception: a browser that asks for a page that is not there (it accepts text/html, and the
path is not the API's) gets an HTML "not found" page; the API and other clients keep JSON."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import fastapi.routing
import sqlalchemy.exc
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from uptally.web.pages import html_page

log = logging.getLogger(__name__)

_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    412: "precondition_failed",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid_request",
    429: "rate_limited",
    503: "unavailable",
}


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        headers: dict[str, str] | None = None,
        details: list[dict[str, str]] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code or _CODES.get(status, "error")
        self.message = message
        self.headers = headers
        self.details = details  # [{"path": JSON pointer into the body, "message"}]


def error_response(
    status: int,
    message: str,
    code: str | None = None,
    headers: dict[str, str] | None = None,
    details: list[dict[str, str]] | None = None,
) -> JSONResponse:
    error: dict[str, Any] = {"code": code or _CODES.get(status, "error"), "message": message}
    if details:
        error["details"] = details
    return JSONResponse({"error": error}, status_code=status, headers=headers)


def json_pointer(loc: Sequence[str | int]) -> str:
    """A pydantic error location as a JSON pointer into the body: ("results", 3, "at") →
    "/results/3/at" (RFC 6901 escapes)."""
    parts = (str(part).replace("~", "~0").replace("/", "~1") for part in loc)
    return "".join("/" + part for part in parts)


def wants_html(request: Request) -> bool:
    """A browser navigating to a page: it accepts text/html, and the path is not the API's."""
    if "/api/" in request.url.path + "/":
        return False
    for item in request.headers.get("accept", "").split(","):
        media, *params = (part.strip().lower() for part in item.split(";"))
        if media == "text/html":
            return not any(_refused(param) for param in params)
    return False


def _refused(param: str) -> bool:
    """An Accept parameter `q=0`: "not this type"."""
    name, _, value = param.partition("=")
    try:
        return name.strip() == "q" and float(value) == 0
    except ValueError:
        return False


def not_found_page(request: Request, headers: dict[str, str] | None = None) -> HTMLResponse:
    return html_page(
        request, "not_found.html", 404, headers, heading="Page not found", path=request.url.path
    )


def _allowed_methods(request: Request) -> list[str]:
    """The methods of the route template this path belongs to (Starlette names only the first
    route's): /maintenance/series is its own resource, not a window called "series"."""
    path = request.url.path
    matching = [r for r in _flat_routes(request.app) if _regex_matches(r, path)]
    if not matching:
        return []
    template = getattr(matching[0], "path", None)
    methods: set[str] = set()
    for route in matching:
        if getattr(route, "path", None) == template:
            methods.update(getattr(route, "methods", None) or ())
    return sorted(methods)


def _flat_routes(app: FastAPI) -> list[Any]:
    """Every route in routing order; FastAPI ≥ 0.16x keeps an included router as one route."""
    flatten = getattr(fastapi.routing, "iter_route_contexts", None)
    return list(flatten(app.router.routes)) if flatten else list(app.router.routes)


def _regex_matches(route: Any, path: str) -> bool:
    regex = getattr(route, "path_regex", None)
    return regex is not None and regex.match(path) is not None


def install(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(request: Request, error: ApiError) -> JSONResponse | HTMLResponse:
        if error.status == 404 and wants_html(request):
            return not_found_page(request, error.headers)
        return error_response(error.status, error.message, error.code, error.headers, error.details)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(
        request: Request, error: StarletteHTTPException
    ) -> JSONResponse | HTMLResponse:
        message = error.detail if isinstance(error.detail, str) else str(error.detail)
        headers = dict(getattr(error, "headers", None) or {})
        if error.status_code == 404 and wants_html(request):
            return not_found_page(request, headers or None)
        if error.status_code == 405:
            headers["Allow"] = ", ".join(_allowed_methods(request))
        return error_response(error.status_code, message, headers=headers or None)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        sent = request.headers.get("content-type")
        if "json" not in (sent or "").lower() and any(
            tuple(item.get("loc", ())) == ("body",) for item in error.errors()
        ):
            # FastAPI reads a body as JSON only when it is labelled so (curl -d sends a form).
            got = f"Content-Type: {sent}" if sent else "no Content-Type"
            return error_response(
                422, f"the body was not read as JSON ({got}): send Content-Type: application/json"
            )
        problems = []
        details = []
        for item in error.errors()[:10]:
            loc = [part for part in item.get("loc", ()) if part != "body"]
            where = ".".join(str(part) for part in loc)
            message = str(item.get("msg", "invalid"))
            problems.append(f"{where}: {message}" if where else message)
            details.append({"path": json_pointer(loc), "message": message})
        refused = getattr(request.state, "on_invalid", None)
        if refused is not None:  # set by a dependency that counts refused bodies
            refused()
        return error_response(422, "; ".join(problems) or "invalid request", details=details)

    @app.exception_handler(TimeoutError)
    @app.exception_handler(sqlalchemy.exc.TimeoutError)
    @app.exception_handler(sqlalchemy.exc.OperationalError)
    @app.exception_handler(sqlalchemy.exc.InterfaceError)
    @app.exception_handler(ConnectionError)
    async def _database_unavailable(_request: Request, error: Exception) -> JSONResponse:
        # The database's deadlines (store/database.py) expired or it is unreachable: not a
        # bug, and not the caller's fault; retrying later may work.
        log.warning("a request failed, the database is unavailable: %r", error)
        return error_response(
            503,
            "the database is unavailable (did not answer in time); retry later",
            "database_unavailable",
            {"Retry-After": "5"},
        )

    @app.exception_handler(Exception)
    async def _bug(_request: Request, error: Exception) -> JSONResponse:
        log.exception("unhandled error", exc_info=error)
        return error_response(500, "internal error (this is a bug in uptally)", "internal")
