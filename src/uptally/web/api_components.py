"""Admin API: components (groups of monitors shown on status pages), read and managed."""

from __future__ import annotations

from typing import Any, Literal

from fastapi import APIRouter, Depends

from uptally.config.managed import COMPONENT
from uptally.config.schema import Component, monitor_document
from uptally.runtime import Runtime
from uptally.web.auth import require_admin
from uptally.web.managed_http import ERRORS
from uptally.web.managed_routes import Resource, add_routes
from uptally.web.schemas import Model

router = APIRouter(
    prefix="/api/v1/components",
    tags=["components"],
    dependencies=[Depends(require_admin)],  # read for GET, write for changes
    responses=ERRORS,
)


class ComponentOut(Model):
    id: str
    name: str
    description: str | None
    group: str | None
    monitors: list[str]
    source: Literal["config", "api"]
    provisioned_by: str | None  # FILE:LINE
    version: int | None = None
    config: dict[str, Any]


class ComponentList(Model):
    components: list[ComponentOut]


def _out(runtime: Runtime, component: Component, version: int | None) -> ComponentOut:
    return ComponentOut(
        id=component.id,
        name=component.name or component.id,
        description=component.description,
        group=component.group,
        monitors=list(component.monitors),
        source="api" if component.id in runtime.managed["component"] else "config",
        provisioned_by=runtime.config.origin("components", component.id),
        version=version,
        config=monitor_document(component),
    )


add_routes(
    router,
    Resource(
        COMPONENT,
        "component",
        "components",
        "/api/v1/components",
        _out,
        ComponentOut,
        ComponentList,
        {"id": "api", "name": "API", "group": "Platform", "monitors": ["api"]},
    ),
    delete_note="Refused (409, with the list) while a status page, SLA policy or customer, "
    "maintenance window or channel still names it.",
)
