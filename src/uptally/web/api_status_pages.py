"""Admin API: the pages of `status_pages`, read and managed (served at their path at once)."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends

from uptally.config.managed import STATUS_PAGE
from uptally.config.schema import StatusPage, monitor_document
from uptally.runtime import Runtime
from uptally.web.auth import require_admin
from uptally.web.managed_http import ERRORS
from uptally.web.managed_routes import Resource, add_routes
from uptally.web.schemas import Model

router = APIRouter(
    prefix="/api/v1/status-pages",
    tags=["status pages"],
    dependencies=[Depends(require_admin)],  # read for GET, write for changes
    responses=ERRORS,
)


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


def _out(runtime: Runtime, page: StatusPage, version: int | None) -> StatusPageOut:
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


add_routes(
    router,
    Resource(
        STATUS_PAGE,
        "status page",
        "status_pages",
        "/api/v1/status-pages",
        _out,
        StatusPageOut,
        StatusPageList,
        {"id": "customers", "path": "/customers", "title": "Acme", "components": ["api"]},
    ),
    delete_note="Its path answers 404 from now on. Served at its path as soon as it is made; "
    "a path another page or uptally itself uses is refused (422).",
)
