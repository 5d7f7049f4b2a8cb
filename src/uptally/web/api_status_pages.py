"""Admin API: the pages of `status_pages`, read and managed (served at their path at once)."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Request, Response

from uptally.config.managed import STATUS_PAGE
from uptally.config.schema import StatusPage, monitor_document
from uptally.managed.changes import Change
from uptally.runtime import Runtime
from uptally.web.auth import principal_of, require_admin
from uptally.web.deps import runtime_of
from uptally.web.errors import ApiError
from uptally.web.managed_http import expected_version, refusals, tag_response
from uptally.web.schemas import ErrorOut, Model

_ERRORS: dict[int | str, dict[str, Any]] = {
    code: {"model": ErrorOut} for code in (400, 401, 403, 404, 409, 412, 413, 422, 429)
}
router = APIRouter(
    prefix="/api/v1/status-pages",
    tags=["status pages"],
    dependencies=[Depends(require_admin)],  # read for GET, write for changes
    responses=_ERRORS,
)

PageBody = Annotated[
    dict[str, Any],
    Body(
        description="One page of `status_pages` in the config file's schema, as JSON.",
        examples=[
            {"id": "customers", "path": "/customers", "title": "Acme", "components": ["api"]}
        ],
    ),
]


class StatusPageOut(Model):
    id: str
    path: str
    title: str
    description: str | None
    components: list[str]
    private: bool
    source: Literal["config", "api"]
    provisioned_by: str | None  # FILE:LINE
    version: int | None = None
    config: dict[str, Any]


class StatusPageList(Model):
    status_pages: list[StatusPageOut]


def _out(runtime: Runtime, page: StatusPage, version: int | None = None) -> StatusPageOut:
    return StatusPageOut(
        id=page.id,
        path=page.path,
        title=page.title,
        description=page.description,
        components=list(page.components),
        private=page.private,
        source="api" if page.id in runtime.managed[STATUS_PAGE.name] else "config",
        provisioned_by=runtime.config.origin("status_pages", page.id),
        version=version,
        config=monitor_document(page),
    )


def _find(runtime: Runtime, page_id: str) -> StatusPage:
    found = next((p for p in runtime.config.status_pages if p.id == page_id), None)
    if found is None:
        raise ApiError(404, f"no status page {page_id!r}")
    return found


def _changed(request: Request, change: Change, response: Response) -> StatusPageOut:
    runtime = runtime_of(request)
    tag_response(response, change.row.version)
    return _out(runtime, _find(runtime, change.id), change.row.version)


@router.get("", response_model=StatusPageList, summary="List status pages")
async def list_pages(request: Request) -> StatusPageList:
    runtime = runtime_of(request)
    return StatusPageList(status_pages=[_out(runtime, p) for p in runtime.config.status_pages])


@router.get("/{page_id}", response_model=StatusPageOut, summary="One status page")
async def get_page(request: Request, page_id: str, response: Response) -> StatusPageOut:
    runtime = runtime_of(request)
    page = _find(runtime, page_id)
    row = await runtime.changes.row(STATUS_PAGE, page_id)
    version = row.version if row is not None and not row.deleted else None
    tag_response(response, version)
    return _out(runtime, page, version)


@router.post("", response_model=StatusPageOut, status_code=201, summary="Create a status page")
async def create_page(request: Request, body: PageBody, response: Response) -> StatusPageOut:
    """Served at its path as soon as this answers; a path another page or uptally itself
    uses is refused (422)."""
    runtime = runtime_of(request)
    with refusals():
        change = await runtime.changes.create(STATUS_PAGE, body, principal_of(request).actor)
    response.headers["Location"] = f"/api/v1/status-pages/{change.id}"
    return _changed(request, change, response)


@router.put("/{page_id}", response_model=StatusPageOut, summary="Replace a status page")
async def replace_page(
    request: Request, page_id: str, body: PageBody, response: Response
) -> StatusPageOut:
    runtime = runtime_of(request)
    with refusals():
        change = await runtime.changes.replace(
            STATUS_PAGE, page_id, body, principal_of(request).actor, expected_version(request)
        )
    return _changed(request, change, response)


@router.patch("/{page_id}", response_model=StatusPageOut, summary="Change a status page")
async def patch_page(
    request: Request, page_id: str, body: PageBody, response: Response
) -> StatusPageOut:
    """A JSON merge patch (RFC 7396): the keys given replace, `null` removes a key."""
    runtime = runtime_of(request)
    with refusals():
        change = await runtime.changes.patch(
            STATUS_PAGE, page_id, body, principal_of(request).actor, expected_version(request)
        )
    return _changed(request, change, response)


@router.delete("/{page_id}", status_code=204, summary="Delete a status page")
async def delete_page(request: Request, page_id: str) -> Response:
    """Its path answers 404 from now on."""
    runtime = runtime_of(request)
    with refusals():
        await runtime.changes.delete(
            STATUS_PAGE, page_id, principal_of(request).actor, expected_version(request)
        )
    return Response(status_code=204)
