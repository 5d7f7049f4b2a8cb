"""Admin API: components (groups of monitors shown on status pages), read and managed."""

from __future__ import annotations

from typing import Annotated, Any, Literal

from fastapi import APIRouter, Body, Depends, Request, Response

from uptally.config.managed import COMPONENT
from uptally.config.schema import Component, monitor_document
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
    prefix="/api/v1/components",
    tags=["components"],
    dependencies=[Depends(require_admin)],  # read for GET, write for changes
    responses=_ERRORS,
)

ComponentBody = Annotated[
    dict[str, Any],
    Body(
        description="One component in the config file's schema, as JSON.",
        examples=[{"id": "api", "name": "API", "group": "Platform", "monitors": ["api"]}],
    ),
]


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


class BatchIn(Model):
    components: list[dict[str, Any]]


def _out(runtime: Runtime, component: Component, version: int | None = None) -> ComponentOut:
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


def _find(runtime: Runtime, component_id: str) -> Component:
    found = next((c for c in runtime.config.components if c.id == component_id), None)
    if found is None:
        raise ApiError(404, f"no component {component_id!r}")
    return found


def _changed(request: Request, change: Change, response: Response) -> ComponentOut:
    runtime = runtime_of(request)
    tag_response(response, change.row.version)
    return _out(runtime, _find(runtime, change.id), change.row.version)


@router.get("", response_model=ComponentList, summary="List components")
async def list_components(request: Request) -> ComponentList:
    runtime = runtime_of(request)
    return ComponentList(components=[_out(runtime, c) for c in runtime.config.components])


@router.get("/{component_id}", response_model=ComponentOut, summary="One component")
async def get_component(request: Request, component_id: str, response: Response) -> ComponentOut:
    runtime = runtime_of(request)
    component = _find(runtime, component_id)
    row = await runtime.changes.row(COMPONENT, component_id)
    version = row.version if row is not None and not row.deleted else None
    tag_response(response, version)
    return _out(runtime, component, version)


@router.post("", response_model=ComponentOut, status_code=201, summary="Create a component")
async def create_component(
    request: Request, body: ComponentBody, response: Response
) -> ComponentOut:
    runtime = runtime_of(request)
    with refusals():
        change = await runtime.changes.create(COMPONENT, body, principal_of(request).actor)
    response.headers["Location"] = f"/api/v1/components/{change.id}"
    return _changed(request, change, response)


@router.post(
    ":batch", response_model=ComponentList, status_code=201, summary="Create many, all or none"
)
async def create_components(request: Request, body: BatchIn) -> ComponentList:
    runtime = runtime_of(request)
    if not body.components or len(body.components) > 10_000:
        raise ApiError(422, "components: give 1 to 10000", details=[])
    with refusals():
        changes = await runtime.changes.batch(
            COMPONENT, body.components, principal_of(request).actor
        )
    return ComponentList(
        components=[_out(runtime, _find(runtime, c.id), c.row.version) for c in changes]
    )


@router.put("/{component_id}", response_model=ComponentOut, summary="Replace a component")
async def replace_component(
    request: Request, component_id: str, body: ComponentBody, response: Response
) -> ComponentOut:
    runtime = runtime_of(request)
    with refusals():
        change = await runtime.changes.replace(
            COMPONENT, component_id, body, principal_of(request).actor, expected_version(request)
        )
    return _changed(request, change, response)


@router.patch("/{component_id}", response_model=ComponentOut, summary="Change a component")
async def patch_component(
    request: Request, component_id: str, body: ComponentBody, response: Response
) -> ComponentOut:
    """A JSON merge patch (RFC 7396): the keys given replace, `null` removes a key."""
    runtime = runtime_of(request)
    with refusals():
        change = await runtime.changes.patch(
            COMPONENT, component_id, body, principal_of(request).actor, expected_version(request)
        )
    return _changed(request, change, response)


@router.delete("/{component_id}", status_code=204, summary="Delete a component")
async def delete_component(request: Request, component_id: str) -> Response:
    """Refused (409, with the list) while a status page, SLA policy or customer, maintenance
    window or channel still names it."""
    runtime = runtime_of(request)
    with refusals():
        await runtime.changes.delete(
            COMPONENT, component_id, principal_of(request).actor, expected_version(request)
        )
    return Response(status_code=204)
